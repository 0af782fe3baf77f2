"""A small schema checker for contract tests: every request our connectors send and every answer the sandbox gives,
held to the platforms' own published schemas (issue #17).

Why our own checker: the schemas come in three dialects (Google's discovery documents, protobuf descriptors shipped
in Google's client, HubSpot's OpenAPI 3 specs) that share one core (type, format, properties, items, enum, $ref),
and what matters here is narrow and strict: no field the platform does not define, the JSON type the platform's
JSON mapping uses (int64 as a string in Google APIs, int32 as a number), enum values the platform defines, required
fields present, documented limits respected. No library installed does that for all three.

The facts (schemas, limits) live beside their tests: Google's in the discovery documents google-api-python-client
ships and the protobuf types google-analytics-data ships, HubSpot's in tests/contracts_hubspot.py, Matomo's in
tests/contracts_matomo.py. The sandbox's answers are recorded with ``record_answers`` (the request log keeps
requests only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sandbox.httpserver import Request, Response, SandboxServer

INT32 = (-(2**31), 2**31 - 1)
_INTEGER_TEXT = re.compile(r"-?\d+")


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def google_enum_key(value: str) -> str:
    """Google's REST front end takes and gives enum values in their proto name (BY_PROPERTY) or lowerCamel form
    (byProperty): Search Console's reference spells them "byProperty", "googleNews", "final" while its discovery
    document lists BY_PROPERTY, GOOGLE_NEWS, FINAL. Compared without case and underscores."""
    return value.replace("_", "").lower()


@dataclass
class SchemaChecker:
    """Checks a JSON value against JSON-Schema-like definitions (discovery documents, OpenAPI 3 components).

    ``schemas`` maps names to definitions; ``ref_prefix`` is stripped from ``$ref`` ("#/components/schemas/" for
    OpenAPI). ``limits`` bounds numeric fields: {(schema name, field): (low, high)}. ``required_from_description``
    takes a property whose description starts with "[Required]" or "Required." as required (discovery documents
    say it so). ``enum_numbers`` maps (schema name, field) to the platform's enum numbers, for answers and requests
    sent with enum-encoding=int. ``enum_key`` normalises enum values before comparing them."""

    schemas: Mapping[str, Any]
    ref_prefix: str = ""
    limits: Mapping[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    required_from_description: bool = False
    enum_numbers: Callable[[str, str], Mapping[int, str] | None] | None = None
    enum_key: Callable[[str], str] = str

    def check(self, schema: Any, value: Any, path: str = "$") -> list[str]:
        """Every violation, each as "<JSON path>: <what is wrong>"; an empty list means the value conforms."""
        out: list[str] = []
        self._check(schema, value, path, out, "", "")
        return out

    def resolve(self, schema: Any) -> tuple[dict[str, Any], str]:
        """(definition, its name) of a schema given by name, by {"$ref": ...} or inline (name "")."""
        name = ""
        if isinstance(schema, str):
            name, schema = schema, self.schemas[schema]
        while isinstance(schema, dict) and "$ref" in schema:
            name = str(schema["$ref"]).removeprefix(self.ref_prefix)
            schema = self.schemas[name]
        return schema, name

    def _check(self, schema: Any, value: Any, path: str, out: list[str], owner: str, prop: str) -> None:
        schema, name = self.resolve(schema)
        owner = name or owner
        if value is None and schema.get("nullable"):
            return
        for key in ("allOf",):
            for part in schema.get(key, []):
                self._check(part, value, path, out, owner, prop)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                tries = [self.check(part, value, path) for part in schema[key]]
                if all(tries):
                    out.append(f"{path}: matches none of the {key} alternatives ({min(tries, key=len)[0]})")
        kind = schema.get("type") or ("object" if "properties" in schema or "additionalProperties" in schema else None)
        if kind == "object":
            self._object(schema, value, path, out, name or owner)
        elif kind == "array":
            if not isinstance(value, list):
                out.append(f"{path}: expected an array, got {type(value).__name__}")
                return
            for i, item in enumerate(value):
                self._check(schema.get("items", {}), item, f"{path}[{i}]", out, owner, prop)
        elif kind is not None:
            self._scalar(kind, schema, value, path, out, owner, prop)

    def _object(self, schema: dict[str, Any], value: Any, path: str, out: list[str], owner: str) -> None:
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        properties: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", False if properties else True)
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                self._check(properties[key], item, where, out, owner, key)
            elif isinstance(extra, dict):
                self._check(extra, item, where, out, owner, key)
            elif extra is not True:
                out.append(f"{where}: not a field of {owner or 'this object'} (its fields: {sorted(properties)})")
        required = set(schema.get("required", []))
        if self.required_from_description:
            required |= {k for k, p in properties.items()
                         if str(p.get("description", "")).lstrip().startswith(("[Required]", "Required."))}
        for key in sorted(required - set(value)):
            out.append(f"{path}: required field {key} of {owner} is missing")

    def _scalar(self, kind: str, schema: dict[str, Any], value: Any, path: str, out: list[str], owner: str,
                prop: str) -> None:
        fmt = schema.get("format")
        number: float | None = None
        if kind == "string":
            if not isinstance(value, str):
                if "enum" in schema and _is_integer(value) and self._enum_number_ok(owner, prop, value, schema):
                    return
                out.append(f"{path}: expected a string{f' ({fmt})' if fmt else ''}, got {type(value).__name__} "
                           f"{value!r}")
                return
            if fmt in ("int64", "uint64"):
                if not _INTEGER_TEXT.fullmatch(value):
                    out.append(f"{path}: {fmt} must be an integer in a JSON string, got {value!r}")
                    return
                number = int(value)
            elif fmt == "date-time" or fmt == "google-datetime":
                try:
                    datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    out.append(f"{path}: not an RFC 3339 date-time: {value!r}")
            elif fmt == "date":
                try:
                    date.fromisoformat(value)
                except ValueError:
                    out.append(f"{path}: not a YYYY-MM-DD date: {value!r}")
            if "enum" in schema and self.enum_key(value) not in {self.enum_key(str(e)) for e in schema["enum"]}:
                out.append(f"{path}: {value!r} is not one of {schema['enum']}")
        elif kind == "integer":
            if not _is_integer(value):
                out.append(f"{path}: expected an integer{f' ({fmt})' if fmt else ''}, got {type(value).__name__} "
                           f"{value!r}")
                return
            if fmt == "int32" and not INT32[0] <= value <= INT32[1]:
                out.append(f"{path}: {value} is out of the int32 range")
            number = value
        elif kind == "number":
            if not _is_number(value):
                out.append(f"{path}: expected a number, got {type(value).__name__} {value!r}")
                return
            number = value
        elif kind == "boolean":
            if not isinstance(value, bool):
                out.append(f"{path}: expected a boolean, got {type(value).__name__} {value!r}")
        if number is not None and (owner, prop) in self.limits:
            low, high = self.limits[(owner, prop)]
            if not low <= number <= high:
                out.append(f"{path}: {number} is outside {owner}.{prop}'s documented range {low:g}..{high:g}")

    def _enum_number_ok(self, owner: str, prop: str, value: int, schema: dict[str, Any]) -> bool:
        """An enum sent as its number (enum-encoding=int): it must be one of the platform's numbers for that
        field, whose name the document lists."""
        numbers = self.enum_numbers(owner, prop) if self.enum_numbers else None
        if not numbers or value not in numbers:
            return False
        return self.enum_key(numbers[value]) in {self.enum_key(str(e)) for e in schema["enum"]}


# ---- Google: discovery documents and protobuf descriptors -----------------------------------------------------------


def discovery_documents_dir() -> Path:
    """Where google-api-python-client keeps the discovery documents it ships (static discovery)."""
    import googleapiclient

    return Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


def discovery_document(name: str) -> dict[str, Any]:
    """One shipped discovery document, e.g. "analyticsdata.v1beta" or "searchconsole.v1"."""
    return json.loads((discovery_documents_dir() / f"{name}.json").read_text())


def discovery_methods(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every method of a discovery document, resources nested at any depth."""
    def walk(resources: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        for resource in resources.values():
            yield from resource.get("methods", {}).values()
            yield from walk(resource.get("resources", {}))
    yield from walk(document.get("resources", {}))


def path_pattern(template: str) -> re.Pattern[str]:
    """A regular expression for a path template: "v1beta/properties/{propertiesId}:runReport", or OpenAPI's
    "/crm/v3/objects/{objectType}"; each {name} is one path segment (percent-encoded when it holds a slash)."""
    parts = re.split(r"(\{[^}]+\})", template.lstrip("/"))
    regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^/{regex}/?$")


def proto_schemas(*message_classes: Any) -> dict[str, Any]:
    """Discovery-style schemas from protobuf messages (proto-plus classes or their descriptors), by full name.

    The proto3 JSON mapping: field names in lowerCamel (json_name), int64/uint64 as strings, int32 as numbers,
    enums by name (numbers where the request asks enum-encoding=int, see ``proto_enum_numbers``), maps as objects,
    repeated fields as arrays. Used where the shipped discovery document is older than the method (runFunnelReport
    is in google-analytics-data's v1alpha types but not in the analyticsdata.v1alpha.json it ships)."""
    from google.protobuf.descriptor import FieldDescriptor as F

    scalar = {F.TYPE_INT64: ("string", "int64"), F.TYPE_UINT64: ("string", "uint64"),
              F.TYPE_SINT64: ("string", "int64"), F.TYPE_FIXED64: ("string", "uint64"),
              F.TYPE_SFIXED64: ("string", "int64"),
              F.TYPE_INT32: ("integer", "int32"), F.TYPE_SINT32: ("integer", "int32"),
              F.TYPE_SFIXED32: ("integer", "int32"), F.TYPE_UINT32: ("integer", "uint32"),
              F.TYPE_FIXED32: ("integer", "uint32"), F.TYPE_DOUBLE: ("number", "double"),
              F.TYPE_FLOAT: ("number", "float"), F.TYPE_BOOL: ("boolean", None), F.TYPE_STRING: ("string", None),
              F.TYPE_BYTES: ("string", "byte")}
    schemas: dict[str, Any] = {}

    def field_schema(fd: Any) -> dict[str, Any]:
        if fd.type == F.TYPE_MESSAGE:
            entry = fd.message_type
            if entry.GetOptions().map_entry:
                return {"type": "object", "additionalProperties": field_schema(entry.fields_by_name["value"])}
            add(entry)
            return {"$ref": entry.full_name}
        if fd.type == F.TYPE_ENUM:
            return {"type": "string", "enum": [v.name for v in fd.enum_type.values]}
        kind, fmt = scalar[fd.type]
        return {"type": kind, **({"format": fmt} if fmt else {})}

    def add(descriptor: Any) -> None:
        if descriptor.full_name in schemas:
            return
        schemas[descriptor.full_name] = definition = {"type": "object", "properties": {}}
        for fd in descriptor.fields:
            one = field_schema(fd)
            repeated = fd.label == F.LABEL_REPEATED and not (
                fd.type == F.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry)
            definition["properties"][fd.json_name] = {"type": "array", "items": one} if repeated else one

    for cls in message_classes:
        add(cls.pb().DESCRIPTOR if hasattr(cls, "pb") else cls)
    return schemas


def proto_enum_numbers(schemas_source: Mapping[str, Any]) -> Callable[[str, str], Mapping[int, str] | None]:
    """(message full name or discovery schema name, json field) -> {enum number: name}, from protobuf descriptors.

    ``schemas_source`` maps schema names to descriptors: proto full names for ``proto_schemas``, and discovery
    schema names (RunReportResponse, MetricHeader ...) to the same messages of the client's types."""

    def numbers(owner: str, prop: str) -> Mapping[int, str] | None:
        descriptor = schemas_source.get(owner)
        if descriptor is None:
            return None
        fd = next((f for f in descriptor.fields if f.json_name == prop), None)
        if fd is None or fd.enum_type is None:
            return None
        return {v.number: v.name for v in fd.enum_type.values}

    return numbers


def descriptors_of(module: Any, names: list[str] | None = None) -> dict[str, Any]:
    """{message name and full name: descriptor} for the proto-plus message classes of a types module."""
    out: dict[str, Any] = {}
    for name in names or dir(module):
        cls = getattr(module, name, None)
        if hasattr(cls, "pb") and hasattr(cls, "meta"):
            try:
                descriptor = cls.pb().DESCRIPTOR
            except (AttributeError, TypeError):
                continue
            out[name] = out[descriptor.full_name] = descriptor
            for nested in descriptor.nested_types:  # also by short name: discovery documents flatten them
                out[nested.full_name] = nested
                out.setdefault(nested.name, nested)
    return out


# Google's error answer over REST (https://cloud.google.com/apis/design/errors#http_mapping): {"error": Status} with
# the HTTP status as code, the canonical code's name as status, google.rpc detail objects typed by "@type", and for
# v3-style APIs a legacy "errors" list of {message, domain, reason} (api-samples/gsc/error_400.json).
GOOGLE_ERROR_SCHEMAS: dict[str, Any] = {
    "Envelope": {"type": "object", "required": ["error"], "properties": {"error": {"$ref": "Status"}}},
    "Status": {"type": "object", "required": ["code", "message", "status"], "properties": {
        "code": {"type": "integer", "format": "int32"},
        "message": {"type": "string"},
        "status": {"type": "string", "enum": [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]},
        "details": {"type": "array", "items": {"type": "object", "required": ["@type"],
                                               "additionalProperties": True, "properties": {}}},
        "errors": {"type": "array", "items": {"type": "object", "required": ["message", "reason"],
                                              "properties": {"message": {"type": "string"},
                                                             "domain": {"type": "string"},
                                                             "reason": {"type": "string"},
                                                             "location": {"type": "string"},
                                                             "locationType": {"type": "string"}}}},
    }},
}
# google.rpc.Code by HTTP status, the mapping of the same design guide (one HTTP status may carry several codes).
GOOGLE_CODES_BY_HTTP = {400: {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"}, 401: {"UNAUTHENTICATED"},
                        403: {"PERMISSION_DENIED"}, 404: {"NOT_FOUND"}, 409: {"ABORTED", "ALREADY_EXISTS"},
                        429: {"RESOURCE_EXHAUSTED"}, 499: {"CANCELLED"}, 500: {"INTERNAL", "UNKNOWN", "DATA_LOSS"},
                        501: {"UNIMPLEMENTED"}, 503: {"UNAVAILABLE"}, 504: {"DEADLINE_EXCEEDED"}}


def google_error_violations(status: int, body: Any) -> list[str]:
    """What is wrong with a Google error answer: its shape, and a code or status that disagrees with the HTTP one."""
    out = SchemaChecker(GOOGLE_ERROR_SCHEMAS).check("Envelope", body)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        if error.get("code") != status:
            out.append(f"$.error.code: {error.get('code')!r} but the HTTP status is {status}")
        if status in GOOGLE_CODES_BY_HTTP and error.get("status") not in GOOGLE_CODES_BY_HTTP[status]:
            out.append(f"$.error.status: {error.get('status')!r} does not go with HTTP {status} "
                       f"({sorted(GOOGLE_CODES_BY_HTTP[status])})")
    return out


# ---- recording the sandbox's answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request the sandbox handled and the answer it gave (faults drawn before handling are not here)."""

    request: Request
    response: Response

    @property
    def json(self) -> Any:
        """The answer's body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.response.body) if self.response.body else None
        except ValueError:
            return None


@contextmanager
def record_answers(server: SandboxServer) -> Iterator[list[Exchange]]:
    """Record every (request, answer) ``server.handle`` produces while the block runs."""
    exchanges: list[Exchange] = []
    original = server.handle

    def handle(request: Request) -> Response:
        response = original(request)
        exchanges.append(Exchange(request, response))
        return response

    server.handle = handle  # type: ignore[method-assign]
    try:
        yield exchanges
    finally:
        del server.handle  # back to the class's method


def fail_on(violations: Mapping[str, list[str]]) -> None:
    """Assert nothing violated a contract, listing every violation (first 40) under the exchange it came from."""
    bad = {k: v for k, v in violations.items() if v}
    lines = [f"{where}: {v}" for where, found in bad.items() for v in found]
    assert not lines, f"{len(lines)} contract violation(s):\n" + "\n".join(lines[:40])
