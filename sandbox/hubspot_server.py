"""HubSpot's REST API (CRM v3/v4, owners, pipelines, marketing e-mails v3), as ``hubspot-api-client`` 12 calls it.

Why emulate the wire: the connector uses the official client, and what breaks HubSpot syncs is in the
protocol, not in the data model. This server reproduces, on purpose:

* ``Authorization: Bearer`` only, 401 with HubSpot's error envelope (``status, message, correlationId,
  category``) otherwise;
* query booleans as the client sends them (``True``/``False``), list parameters as repeated keys (also
  accepted comma-separated), optional trailing slashes (the client calls ``/marketing/v3/emails/`` and
  ``/crm/v3/owners/``);
* 414 for a request line over 4,000 bytes (long ``properties=`` lists must go through batch read/search);
* list paging by id with ``paging.next.after`` absent on the last page, ``archived=true`` listing only
  archived records; search never returns archived records nor associations;
* the search 10,000-result cap: a request with ``after + limit > 10000`` is refused with 400, and
  ``paging.next`` disappears once 10,000 results have been served, so a connector must cut its windows
  (the bulk import puts more than 10,000 contacts in one millisecond, so only an ``hs_object_id`` drain works);
* rate limits: ``requests_per_10s`` in a rolling 10 s (429 ``TEN_SECONDLY_ROLLING`` with ``Retry-After: 1``)
  and ``search_per_second`` for search (429 ``SECONDLY``, no ``Retry-After``); the clock is ``server.clock``
  so tests can move time instead of sleeping;
* marketing e-mail counters of the last 30 days still grow on later reads (per read, like the other servers).

The CRM itself lives in ``sandbox.hubspot_store.CrmStore``; ``touch``, ``archive`` and ``create_contacts``
mutate it for incremental-read tests.
"""

from __future__ import annotations

import secrets
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sandbox.httpserver import Request, Response, SandboxServer, json_response
from sandbox.hubspot_store import (
    ASSOCIATION_TYPES,
    BULK_IMPORT_SIZE,
    CREATED_PROPERTY,
    DEFAULT_PROPERTIES,
    HISTORY_DAYS,
    LIST_MAX_LIMIT,
    MODIFIED_PROPERTY,
    OBJECT_TYPE_ALIASES,
    PIPELINES,
    PROPERTY_DEFS,
    CrmError,
    CrmRecord,
    CrmStore,
    iso_ms,
    parse_time_ms,
)
from sandbox.world import EmailSend, World

MAX_REQUEST_LINE = 4_000
BATCH_MAX_INPUTS = 100
EMAIL_RESTATE_DAYS = 30
_EMAIL_SHORTFALL = 0.15  # share of opens/clicks/unsubscribes not yet counted on the first read
_DAILY_LIMIT = 500_000
_AUTH_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                 "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")
_NOT_FOUND_MESSAGE = "Object not found.  objectId are usually numeric."
_OWNERS: tuple[dict[str, Any], ...] = (
    {"id": "52550101", "email": "claire.martin@shop.example", "firstName": "Claire", "lastName": "Martin",
     "userId": 12282501},
    {"id": "52550102", "email": "julien.petit@shop.example", "firstName": "Julien", "lastName": "Petit",
     "userId": 12282502},
    {"id": "52550103", "email": "sofia.roux@shop.example", "firstName": "Sofia", "lastName": "Roux",
     "userId": 12282503},
    {"id": "52550104", "email": "marc.leroy@shop.example", "firstName": "Marc", "lastName": "Leroy",
     "userId": 12282504},
    {"id": "52550105", "email": "nina.garcia@shop.example", "firstName": "Nina", "lastName": "Garcia",
     "userId": 12282505},
)
_ARCHIVED_OWNERS: tuple[dict[str, Any], ...] = (
    {"id": "52550099", "email": "ancien.stagiaire@shop.example", "firstName": "Ancien", "lastName": "Stagiaire",
     "userId": 12282499},
)


@dataclass
class _HsError(Exception):
    status: int
    message: str
    category: str = "VALIDATION_ERROR"


def _true(values: list[str] | None, default: bool = False) -> bool:
    """Query booleans: the client sends ``True``/``False``; HubSpot reads them case-insensitively."""
    if not values:
        return default
    return values[-1].strip().lower() == "true"


def _multi(values: Iterable[str] | None) -> list[str]:
    """Repeated keys and comma-separated values both mean a list."""
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    raw = (query.get(name) or [""])[-1]
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _HsError(400, f"Invalid input: {name} must be an integer, got {raw!r}.") from None


class HubSpotServer(SandboxServer):
    """HubSpot API emulator over one world; see the module docstring. Thread-safe."""

    name = "hubspot"

    def __init__(self, world: World, *, token: str, requests_per_10s: int = 100, search_per_second: int = 5,
                 history_days: int = HISTORY_DAYS, bulk_import_size: int = BULK_IMPORT_SIZE) -> None:
        """``history_days`` and ``bulk_import_size`` size the portal (see ``CrmStore``); the defaults give the
        full ~20,000 contacts, including a bulk import larger than one search can page through."""
        super().__init__()
        if not token:
            raise ValueError("token must be non-empty")
        self.world = world
        self.token = token
        self.requests_per_10s = requests_per_10s
        self.search_per_second = search_per_second
        self.store = CrmStore(world, history_days=history_days, bulk_import_size=bulk_import_size)
        # "Now" for mutations' defaults and for which e-mails are still accruing; tests may move it.
        self.now_ms: int = self.store.end_of_today_ms
        self.clock: Callable[[], float] = time.monotonic
        self._rate_lock = threading.Lock()
        self._window: deque[float] = deque()
        self._search_window: deque[float] = deque()
        self._daily_count = 0
        self._email_reads = 0
        first = world.today - timedelta(days=history_days - 1)
        self.emails: list[EmailSend] = [
            e for i in range(history_days) for e in world.email_sends(first + timedelta(days=i))]

    @classmethod
    def for_sandbox(cls, world: World) -> HubSpotServer:
        """The launcher's factory: a fresh random token, and the private-app limits of a Professional portal.

        190 requests / 10 s and 10 searches / s (twice HubSpot's search limit) so that the launcher's own
        sandbox never throttles a connector configured with HubSpot's defaults (100 / 10 s, 5 / s); tests of
        throttling build their own server with tight limits.
        """
        return cls(world, token="pat-sandbox-" + secrets.token_hex(16), requests_per_10s=190, search_per_second=10)

    def env(self) -> dict[str, str]:
        return {"MKPI_HUBSPOT_ENDPOINT": self.url, "MKPI_HUBSPOT_TOKEN": self.token}

    # ---- mutations (for incremental-read tests) --------------------------------------------------------

    def touch(self, object_type: str, ids: Iterable[str | int], at_ms: int | None = None,
              properties: dict[str, str | None] | None = None) -> None:
        """Modify records at ``at_ms`` (default ``now_ms``), e.g. ``properties={"lifecyclestage": "customer"}``."""
        self.store.touch(object_type, ids, self.now_ms if at_ms is None else at_ms, properties)

    def archive(self, object_type: str, ids: Iterable[str | int], at_ms: int | None = None) -> None:
        self.store.archive(object_type, ids, self.now_ms if at_ms is None else at_ms)

    def create_contacts(self, n: int, at_ms: int | None = None,
                        properties: dict[str, str | None] | None = None) -> list[str]:
        return self.store.create_contacts(n, self.now_ms if at_ms is None else at_ms, properties)

    @property
    def email_reads(self) -> int:
        """Successful marketing-email reads so far; the next one sees recent counters at this version."""
        with self._rate_lock:
            return self._email_reads

    # ---- errors ----------------------------------------------------------------------------------------

    def error_response(self, status: int, message: str, category: str | None = None,
                       headers: dict[str, str] | None = None) -> Response:
        default = {400: "VALIDATION_ERROR", 401: "INVALID_AUTHENTICATION", 403: "MISSING_SCOPES",
                   404: "OBJECT_NOT_FOUND", 414: "VALIDATION_ERROR", 429: "RATE_LIMITS"}
        body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                "category": category or default.get(status, "INTERNAL_ERROR")}
        return json_response(status, body, headers)

    def rate_limit_response(self, retry_after: int | None) -> Response:
        """A drawn 429: the ten-secondly limit with Retry-After, or the secondly (search) one without, as HubSpot."""
        if retry_after is None:
            return self._rate_limited("SECONDLY")
        return self._rate_limited("TEN_SECONDLY_ROLLING", retry_after)

    def server_error_response(self, status: int) -> Response:
        return self.error_response(status, "internal error", "INTERNAL_ERROR")

    def _rate_limited(self, policy: str, retry_after: int = 1) -> Response:
        ten = policy == "TEN_SECONDLY_ROLLING"
        body = {
            "status": "error",
            "message": f"You have reached your {'ten_secondly_rolling' if ten else 'secondly'} limit.",
            "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()), "policyName": policy,
            "groupName": "publicapi:private-app:sandbox" if ten else "publicapi:search",
        }
        return json_response(429, body, {"Retry-After": str(retry_after)} if ten else {})

    def _admit(self, is_search: bool) -> tuple[Response | None, dict[str, str]]:
        """Count the request against the rolling windows; rejected requests are not counted."""
        now = self.clock()
        with self._rate_lock:
            window = self._window
            while window and window[0] <= now - 10.0:
                window.popleft()
            if len(window) >= self.requests_per_10s:
                return self._rate_limited("TEN_SECONDLY_ROLLING"), {}
            if is_search:
                searches = self._search_window
                while searches and searches[0] <= now - 1.0:
                    searches.popleft()
                if len(searches) >= self.search_per_second:
                    return self._rate_limited("SECONDLY"), {}
                searches.append(now)
            window.append(now)
            self._daily_count += 1
            if is_search:  # HubSpot sends no rate-limit headers on search responses
                return None, {}
            return None, {
                "X-HubSpot-RateLimit-Daily": str(_DAILY_LIMIT),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, _DAILY_LIMIT - self._daily_count)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Max": str(self.requests_per_10s),
                "X-HubSpot-RateLimit-Remaining": str(max(0, self.requests_per_10s - len(window))),
            }

    # ---- HTTP ------------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        line = len(request.path) + (1 + len(request.raw_query) if request.raw_query else 0)
        if line > MAX_REQUEST_LINE:
            return self.error_response(414, f"URI Too Long: the request URI is {line} bytes, over HubSpot's "
                                            f"{MAX_REQUEST_LINE}. Request many properties through batch read "
                                            "or search (POST) instead.")
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), self.token.encode()):
            return self.error_response(401, _AUTH_MESSAGE, "INVALID_AUTHENTICATION")
        parts = [urllib.parse.unquote(p) for p in request.path.strip("/").split("/") if p]
        is_search = request.method == "POST" and len(parts) == 5 and parts[:3] == ["crm", "v3", "objects"] \
            and parts[4] == "search"
        limited, headers = self._admit(is_search)
        if limited is not None:
            return limited
        try:
            payload, status = self._route(request, parts)
        except _HsError as err:
            return self.error_response(err.status, err.message, err.category, headers)
        except CrmError as err:
            return self.error_response(err.status, err.message, err.category, headers)
        return json_response(status, payload, headers)

    def _route(self, request: Request, parts: list[str]) -> tuple[Any, int]:
        method, q = request.method, request.query
        n = len(parts)
        if n >= 4 and parts[:3] == ["crm", "v3", "objects"]:
            object_type = self._object_type(parts[3])
            if n == 4 and method == "GET":
                return self._list(object_type, q), 200
            if n == 5 and parts[4] == "search" and method == "POST":
                return self._search(object_type, self._body(request)), 200
            if n == 6 and parts[4:] == ["batch", "read"] and method == "POST":
                return self._batch_read(object_type, self._body(request), q)
            if n == 5 and method == "GET":
                return self._get(object_type, parts[4], q), 200
        if n == 7 and parts[:3] == ["crm", "v4", "associations"] and parts[5:] == ["batch", "read"] \
                and method == "POST":
            return self._associations_batch(self._object_type(parts[3]), self._object_type(parts[4]),
                                             self._body(request))
        if n == 7 and parts[:3] == ["crm", "v4", "objects"] and parts[5] == "associations" and method == "GET":
            return self._associations_page(self._object_type(parts[3]), parts[4], self._object_type(parts[6]), q), 200
        if n == 4 and parts[:3] == ["crm", "v3", "properties"] and method == "GET":
            return self._properties(self._object_type(parts[3])), 200
        if n >= 4 and parts[:3] == ["crm", "v3", "pipelines"] and method == "GET":
            return self._pipelines(parts[3], parts[4:]), 200
        if n >= 3 and parts[:3] == ["crm", "v3", "owners"] and method == "GET":
            return self._owners(q, parts[3] if n == 4 else None), 200
        if n >= 3 and parts[:3] == ["marketing", "v3", "emails"] and method == "GET":
            return self._emails(q, parts[3:]), 200
        raise _HsError(404, f"No route for {method} {request.path}", "OBJECT_NOT_FOUND")

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        body = request.json
        if not isinstance(body, dict):
            raise _HsError(400, "Invalid input JSON on line 1, column 1: the request body must be a JSON object.")
        return body

    @staticmethod
    def _object_type(raw: str) -> str:
        canonical = OBJECT_TYPE_ALIASES.get(raw.lower())
        if canonical is None:
            raise _HsError(400, f"Unable to infer object type from: {raw}")
        return canonical

    # ---- records ---------------------------------------------------------------------------------------

    @staticmethod
    def _wanted(object_type: str, requested: list[str]) -> list[str]:
        """Requested properties (unknown names dropped), plus id, create and modify dates as HubSpot adds."""
        if not requested:
            return list(DEFAULT_PROPERTIES[object_type])
        defs = PROPERTY_DEFS[object_type]
        always = ("hs_object_id", CREATED_PROPERTY[object_type], MODIFIED_PROPERTY[object_type])
        return sorted({p for p in requested if p in defs} | set(always))

    def _record_json(self, object_type: str, rec: CrmRecord, props: list[str],
                     associations: list[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": rec.id,
            "properties": {p: rec.properties.get(p) for p in props},
            "createdAt": iso_ms(rec.created_ms),
            "updatedAt": iso_ms(rec.updated_ms),
            "archived": rec.archived,
        }
        if rec.archived and rec.archived_ms is not None:
            out["archivedAt"] = iso_ms(rec.archived_ms)
        assoc: dict[str, Any] = {}
        for to_type in associations or []:
            pair = ASSOCIATION_TYPES.get((object_type, to_type))
            if pair is None:
                continue
            ids = self.store.associated(object_type, to_type, rec.id)
            if ids:
                assoc[to_type] = {"results": [{"id": i, "type": pair[1]} for i in ids]}
        if assoc:
            out["associations"] = assoc
        return out

    def _list(self, object_type: str, q: dict[str, list[str]]) -> dict[str, Any]:
        limit = _int_param(q, "limit", 10)
        if not 1 <= limit <= LIST_MAX_LIMIT:
            raise _HsError(400, f"Invalid input: limit must be between 1 and {LIST_MAX_LIMIT}, got {limit}.")
        after = _int_param(q, "after", 0)
        props = self._wanted(object_type, _multi(q.get("properties")))
        assoc = [OBJECT_TYPE_ALIASES.get(a.lower(), a) for a in _multi(q.get("associations"))]
        records, next_id = self.store.list_page(object_type, after, limit, _true(q.get("archived")))
        payload: dict[str, Any] = {"results": [self._record_json(object_type, r, props, assoc) for r in records]}
        if next_id is not None:
            keep = [(k, v) for k, vs in q.items() if k != "after" for v in vs]
            link = f"{self.url}/crm/v3/objects/{object_type}?{urllib.parse.urlencode(keep + [('after', next_id)])}"
            payload["paging"] = {"next": {"after": str(next_id), "link": link}}
        return payload

    def _get(self, object_type: str, object_id: str, q: dict[str, list[str]]) -> dict[str, Any]:
        rec = self.store.get(object_type, object_id, _true(q.get("archived")))
        if rec is None:
            raise _HsError(404, _NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND")
        props = self._wanted(object_type, _multi(q.get("properties")))
        assoc = [OBJECT_TYPE_ALIASES.get(a.lower(), a) for a in _multi(q.get("associations"))]
        return self._record_json(object_type, rec, props, assoc)

    def _search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        page = self.store.search(object_type, body)
        requested = body.get("properties") or []
        if not isinstance(requested, list):
            raise _HsError(400, "Invalid input JSON: properties must be a list of names.")
        props = self._wanted(object_type, [str(p) for p in requested])
        payload: dict[str, Any] = {"total": page.total,
                                   "results": [self._record_json(object_type, r, props) for r in page.records]}
        if page.next_after is not None:
            payload["paging"] = {"next": {"after": page.next_after}}
        return payload

    def _batch_read(self, object_type: str, body: dict[str, Any], q: dict[str, list[str]]) -> tuple[Any, int]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise _HsError(400, "Invalid input JSON: inputs must be a list of {\"id\": ...}.")
        if len(inputs) > BATCH_MAX_INPUTS:
            raise _HsError(400, f"Batch input limit exceeded: {len(inputs)} inputs; the maximum is "
                                f"{BATCH_MAX_INPUTS}.")
        if body.get("idProperty"):
            raise _HsError(400, "The sandbox supports batch read by record id only (no idProperty).")
        props = self._wanted(object_type, [str(p) for p in body.get("properties") or []])
        archived = _true(q.get("archived"))
        results, missing = [], []
        for item in inputs:
            rid = str((item or {}).get("id", "")) if isinstance(item, dict) else ""
            rec = self.store.get(object_type, rid, archived)
            if rec is None:
                missing.append(rid)
            elif all(r["id"] != rec.id for r in results):
                results.append(self._record_json(object_type, rec, props))
        now = iso_ms(self.now_ms)
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if not missing:
            return payload, 200
        payload["numErrors"] = 1
        payload["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some "
                              f"{object_type} objects, they may be deleted or not exist. Check that ids are valid.",
                              "context": {"ids": missing}}]
        return payload, 207

    def _associations_batch(self, from_type: str, to_type: str, body: dict[str, Any]) -> tuple[Any, int]:
        pair = ASSOCIATION_TYPES.get((from_type, to_type))
        if pair is None:
            raise _HsError(400, f"The sandbox has no associations from {from_type} to {to_type}.")
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise _HsError(400, "Invalid input JSON: inputs must be a list of {\"id\": ...}.")
        if len(inputs) > 1_000:
            raise _HsError(400, f"Batch input limit exceeded: {len(inputs)} inputs; the maximum is 1000.")
        results, errors = [], []
        singular = from_type.rstrip("s") if from_type != "companies" else "company"
        for item in inputs:
            rid = str((item or {}).get("id", "")) if isinstance(item, dict) else ""
            ids = self.store.associated(from_type, to_type, rid) if self.store.get(from_type, rid) else []
            if ids:
                results.append({"from": {"id": rid}, "to": [
                    {"toObjectId": int(i), "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": pair[0], "label": None}]} for i in ids]})
            else:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                               "context": {"fromObjectId": [rid], "toObjectType": [to_type]},
                               "message": f"No {to_type} is associated with {singular} {rid}."})
        now = iso_ms(self.now_ms)
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            payload["numErrors"] = len(errors)
            payload["errors"] = errors
            return payload, 207
        return payload, 200

    def _associations_page(self, from_type: str, object_id: str, to_type: str,
                           q: dict[str, list[str]]) -> dict[str, Any]:
        pair = ASSOCIATION_TYPES.get((from_type, to_type))
        if pair is None or self.store.get(from_type, object_id) is None:
            raise _HsError(404, _NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND")
        ids = self.store.associated(from_type, to_type, object_id)
        limit = min(max(_int_param(q, "limit", 500), 1), 500)
        after = _int_param(q, "after", 0)
        page = ids[after:after + limit]
        payload: dict[str, Any] = {"results": [
            {"toObjectId": int(i), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": pair[0],
                                                         "label": None}]} for i in page]}
        if after + limit < len(ids):
            payload["paging"] = {"next": {"after": str(after + limit)}}
        return payload

    # ---- metadata ------------------------------------------------------------------------------------

    @staticmethod
    def _properties(object_type: str) -> dict[str, Any]:
        defs = PROPERTY_DEFS[object_type]
        return {"results": [d.as_json(i) for i, d in enumerate(defs.values())]}

    @staticmethod
    def _pipeline_json(p: dict[str, Any]) -> dict[str, Any]:
        ts = "2023-02-24T03:00:00.000Z"
        return {
            "id": p["id"], "label": p["label"], "displayOrder": p["displayOrder"], "createdAt": ts, "updatedAt": ts,
            "archived": False,
            "stages": [{"id": sid, "label": label, "displayOrder": i, "createdAt": ts, "updatedAt": ts,
                        "archived": False, "writePermissions": "CRUD_PERMITTED",
                        "metadata": {"isClosed": "true" if closed else "false", "probability": prob}}
                       for i, (sid, label, closed, prob) in enumerate(p["stages"])],
        }

    def _pipelines(self, object_type: str, rest: list[str]) -> dict[str, Any]:
        if self._object_type(object_type) != "deals":
            return {"results": []}
        pipelines = [self._pipeline_json(p) for p in PIPELINES]
        if not rest:
            return {"results": pipelines}
        found = next((p for p in pipelines if p["id"] == rest[0]), None)
        if found is None:
            raise _HsError(404, f"Pipeline {rest[0]} not found.", "OBJECT_NOT_FOUND")
        if rest[1:] == ["stages"]:
            return {"results": found["stages"]}
        return found

    def _owners(self, q: dict[str, list[str]], owner_id: str | None) -> dict[str, Any]:
        ts_c, ts_u = "2020-10-28T21:17:56.082Z", "2024-01-31T00:25:34.448Z"
        archived = _true(q.get("archived"))
        owners = [{**o, "createdAt": ts_c, "updatedAt": ts_u, "archived": archived, "teams": []}
                  for o in (_ARCHIVED_OWNERS if archived else _OWNERS)]
        if owner_id is not None:
            found = next((o for o in owners if o["id"] == owner_id), None)
            if found is None:
                raise _HsError(404, _NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND")
            return found
        email = (q.get("email") or [""])[-1]
        if email:
            owners = [o for o in owners if o["email"] == email]
        limit = min(max(_int_param(q, "limit", 100), 1), 500)
        after = _int_param(q, "after", 0)
        page = owners[after:after + limit]
        payload: dict[str, Any] = {"results": page}
        if after + limit < len(owners):
            payload["paging"] = {"next": {"after": str(after + limit)}}
        return payload

    # ---- marketing e-mails ---------------------------------------------------------------------------

    def _next_email_version(self) -> int:
        with self._rate_lock:
            version = self._email_reads
            self._email_reads += 1
            return version

    def email_counters(self, email: EmailSend, version: int) -> dict[str, int]:
        """Counters as read ``version`` sees them: final after 30 days, still growing before.

        ``sent``, ``delivered`` and bounces are known at send time; opens, clicks, unsubscribes and spam
        reports keep arriving, so a recent e-mail shows ``1 - 0.15 / (1 + version)`` of them (rounded down,
        which keeps ``click <= open`` and makes every counter non-decreasing from one read to the next).
        """
        counters = dict(email.counters)
        if email.send_ts_ms > self.now_ms - EMAIL_RESTATE_DAYS * 86_400_000:
            factor = 1.0 - _EMAIL_SHORTFALL / (1 + max(version, 0))
            for key in ("open", "click", "unsubscribed", "spamreport"):
                counters[key] = int(counters[key] * factor)
        counters.update({"dropped": 0, "selected": email.sent, "suppressed": 0, "pending": 0,
                         "contactslost": counters["unsubscribed"] + counters["hardbounced"],
                         "notsent": 0, "statuschange": 0})
        return counters

    @staticmethod
    def _stats(counters: dict[str, int]) -> dict[str, Any]:
        def pct(a: int, b: int) -> float:
            return round(100.0 * a / b, 2) if b else 0.0

        c = counters
        ratios = {
            "deliveredratio": pct(c["delivered"], c["sent"]), "openratio": pct(c["open"], c["delivered"]),
            "clickratio": pct(c["click"], c["delivered"]), "clickthroughratio": pct(c["click"], c["open"]),
            "bounceratio": pct(c["bounce"], c["sent"]), "hardbounceratio": pct(c["hardbounced"], c["sent"]),
            "softbounceratio": pct(c["softbounced"], c["sent"]),
            "unsubscribedratio": pct(c["unsubscribed"], c["delivered"]),
            "spamreportratio": pct(c["spamreport"], c["delivered"]),
            "contactslostratio": pct(c["contactslost"], c["delivered"]), "notsentratio": 0.0,
        }
        opens = c["open"]
        breakdown = {"open_device_type": {"computer": round(opens * 0.38), "mobile": opens - round(opens * 0.38),
                                          "unknown": 0},
                     "click_device_type": {"computer": round(c["click"] * 0.45),
                                           "mobile": c["click"] - round(c["click"] * 0.45), "unknown": 0}}
        return {"counters": dict(counters), "ratios": ratios, "deviceBreakdown": breakdown, "qualifierStats": {}}

    @staticmethod
    def _campaign(email: EmailSend) -> str:
        day = iso_ms(email.send_ts_ms)[:7]
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://shop.example/campaign/newsletter/{day}"))

    def _email_json(self, email: EmailSend, version: int, include_stats: bool) -> dict[str, Any]:
        publish = iso_ms(email.send_ts_ms)
        out: dict[str, Any] = {
            "id": str(email.id), "name": email.name, "subject": email.subject, "state": "PUBLISHED",
            "type": "BATCH_EMAIL", "subcategory": "batch", "isPublished": True, "isTransactional": False,
            "language": "fr", "publishDate": publish, "publishedAt": publish,
            "createdAt": iso_ms(email.send_ts_ms - 2 * 86_400_000), "updatedAt": publish, "archived": False,
            "campaign": self._campaign(email), "campaignName": f"Newsletter {publish[:7]}",
            "from": {"fromName": "Maison Exemple", "replyTo": "bonjour@shop.example"},
            "activeDomain": "shop.example", "sendOnPublish": True,
        }
        if include_stats:
            out["stats"] = self._stats(self.email_counters(email, version))
        return out

    def _emails(self, q: dict[str, list[str]], rest: list[str]) -> dict[str, Any]:
        visible = [e for e in self.emails if e.send_ts_ms <= self.now_ms]
        if rest[:1] == ["statistics"] and len(rest) == 2 and rest[1] in ("list", "histogram"):
            start = parse_time_ms((q.get("startTimestamp") or [None])[-1])
            end = parse_time_ms((q.get("endTimestamp") or [None])[-1])
            if start is None or end is None:
                raise _HsError(400, "startTimestamp and endTimestamp are required ISO 8601 timestamps.")
            wanted = set(_multi(q.get("emailIds")))
            chosen = [e for e in visible if start <= e.send_ts_ms < end and (not wanted or str(e.id) in wanted)]
            version = self._next_email_version()
            if rest[1] == "list":
                return self._stats_list(chosen, version)
            return self._histogram(chosen, version, (q.get("interval") or ["DAY"])[-1].upper(), start, end)
        if len(rest) == 1:
            found = next((e for e in visible if str(e.id) == rest[0]), None)
            if found is None:
                raise _HsError(404, _NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND")
            return self._email_json(found, self._next_email_version(), _true(q.get("includeStats"), True))
        if rest:
            raise _HsError(404, f"No route for GET /marketing/v3/emails/{'/'.join(rest)}", "OBJECT_NOT_FOUND")
        if _true(q.get("archived")):
            visible = []
        sort = (_multi(q.get("sort")) or ["id"])[0]  # a list parameter in the client; the first key sorts
        keys: dict[str, Callable[[EmailSend], Any]] = {
            "id": lambda e: e.id, "name": lambda e: e.name, "publishDate": lambda e: e.send_ts_ms,
            "createdAt": lambda e: e.send_ts_ms, "updatedAt": lambda e: e.send_ts_ms}
        key = keys.get(sort.lstrip("-"))
        if key is None:
            raise _HsError(400, f"Invalid sort {sort!r}: use one of {sorted(keys)} (prefix - for descending).")
        ordered = sorted(visible, key=key, reverse=sort.startswith("-"))
        limit = min(max(_int_param(q, "limit", 10), 1), 500)
        after = _int_param(q, "after", 0)
        page = ordered[after:after + limit]
        version = self._next_email_version()
        include = _true(q.get("includeStats"))
        payload: dict[str, Any] = {"total": len(ordered),
                                   "results": [self._email_json(e, version, include) for e in page]}
        if after + limit < len(ordered):
            keep = [(k, v) for k, vs in q.items() if k != "after" for v in vs]
            link = f"{self.url}/marketing/v3/emails/?{urllib.parse.urlencode(keep + [('after', after + limit)])}"
            payload["paging"] = {"next": {"after": str(after + limit), "link": link}}
        return payload

    def _aggregate(self, emails: list[EmailSend], version: int) -> dict[str, Any]:
        totals: dict[str, int] = {}
        for e in emails:
            for k, v in self.email_counters(e, version).items():
                totals[k] = totals.get(k, 0) + v
        if not totals:
            totals = {k: 0 for k in self.email_counters(self.emails[0], version)} if self.emails else {}
        return self._stats(totals) if totals else {"counters": {}, "ratios": {}, "deviceBreakdown": {},
                                                  "qualifierStats": {}}

    def _stats_list(self, emails: list[EmailSend], version: int) -> dict[str, Any]:
        campaigns: dict[str, list[EmailSend]] = {}
        for e in emails:
            campaigns.setdefault(self._campaign(e), []).append(e)
        return {"emails": [e.id for e in emails], "aggregate": self._aggregate(emails, version),
                "campaignAggregations": {c: self._aggregate(es, version) for c, es in campaigns.items()}}

    def _histogram(self, emails: list[EmailSend], version: int, interval: str, start: int, end: int) -> dict[str, Any]:
        if interval != "DAY":
            raise _HsError(400, f"The sandbox supports interval=DAY only; got {interval!r}.")
        day_ms = 86_400_000
        results = []
        t = start - start % day_ms
        while t < end:
            in_day = [e for e in emails if t <= e.send_ts_ms < t + day_ms]
            results.append({"interval": {"start": iso_ms(t), "end": iso_ms(t + day_ms)},
                            "aggregations": self._aggregate(in_day, version)})
            t += day_ms
        return {"total": len(results), "results": results}
