"""Every setting's default is written once, in the pydantic models of connectors/settings.py (issue #20 item 3).

The public dataclasses (`Settings`, `GA4Settings`, ...) take their defaults from the models (`_shaped_by`). These
tests read the module's source and its classes: a default written again in a dataclass, a model field the public
shape forgot, or a dataclass default that differs from what load_settings gives for an empty file all fail.
"""

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
from pydantic import BaseModel

import connectors.settings as settings_module
from connectors.settings import GA4Settings, Secret, Settings, WarehouseSettings, load_settings

SOURCE = Path(settings_module.__file__).read_text(encoding="utf-8")
# Defaults a dataclass may write although its model has a field of that name: the model holds only the file's
# overrides, and the public value is the shipped figures with the overrides laid over them (load_settings merges).
DERIVED = {("AlertsSettings", "stale_after_days"), ("ReconciliationSettings", "bands"),
           ("Settings", "min_denominators")}


def _shaped_classes() -> list[tuple[ast.ClassDef, ast.Call]]:
    """Every class of the module decorated with `_shaped_by(...)`, with that decorator call."""
    found = []
    for node in ast.parse(SOURCE).body:
        if isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "_shaped_by":
                    found.append((node, decorator))
    return found


SHAPED = _shaped_classes()


def _model_of(decorator: ast.Call) -> tuple[type[BaseModel], dict[str, tuple[type[BaseModel], str]]]:
    """The model a dataclass is shaped by, and its renamed fields (field -> (model, field))."""
    model = getattr(settings_module, decorator.args[0].id)
    renamed = {k.arg: (getattr(settings_module, k.value.elts[0].id), k.value.elts[1].value) for k in decorator.keywords}
    return model, renamed


def _is_section(model: type[BaseModel], name: str) -> bool:
    annotation = model.model_fields[name].annotation
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def test_every_public_settings_class_is_shaped_by_a_model():
    public = {name for name, obj in vars(settings_module).items()
              if dataclasses.is_dataclass(obj) and obj.__module__ == settings_module.__name__}
    assert public == {node.name for node, _ in SHAPED}
    assert {"Settings", "GA4Settings", "WarehouseSettings", "AlertsSettings"} <= public


@pytest.mark.parametrize(("node", "decorator"), SHAPED, ids=[n.name for n, _ in SHAPED])
def test_a_dataclass_writes_no_default_its_model_has(node, decorator):
    """A default in the dataclass body is allowed only for what the file never holds: a secret or credential, a
    section (its own dataclass), or a merged value (DERIVED)."""
    model, renamed = _model_of(decorator)
    for statement in node.body:
        if not (isinstance(statement, ast.AnnAssign) and statement.value is not None):
            continue
        name = statement.target.id
        owner, key = renamed.get(name, (model, name))
        if key not in owner.model_fields or (node.name, name) in DERIVED:
            continue
        assert _is_section(owner, key), f"{node.name}.{name} writes a default again: {owner.__name__}.{key} has it"
        # a section's default is its own dataclass, built from its own model
        factory = statement.value.keywords[0].value.id
        section_model = owner.model_fields[key].annotation
        assert _model_of(next(d for n, d in SHAPED if n.name == factory))[0] is section_model


@pytest.mark.parametrize(("node", "decorator"), SHAPED, ids=[n.name for n, _ in SHAPED])
def test_dataclass_defaults_are_the_models_and_no_model_field_is_left_out(node, decorator):
    model, renamed = _model_of(decorator)
    cls = getattr(settings_module, node.name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    sources = {renamed.get(name, (model, name)) for name in fields}
    for key in model.model_fields:  # a section may be flattened: warehouse.ducklake.data_path -> ducklake_data_path
        flattened = _is_section(model, key) and any(o is model.model_fields[key].annotation for o, _ in sources)
        assert (model, key) in sources or flattened, f"{node.name} lacks {model.__name__}.{key}"
    for name, f in fields.items():
        owner, key = renamed.get(name, (model, name))
        info = owner.model_fields.get(key)
        if info is None or (node.name, name) in DERIVED or _is_section(owner, key) or info.is_required():
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert default == info.get_default(call_default_factory=True), f"{node.name}.{name}"


def test_the_dataclasses_write_no_value_but_none_or_empty():
    """The old second layer's literal defaults are gone: a dataclass default is None, empty, or built (a section,
    a merged mapping); numbers and texts live in the models."""
    for node, _ in SHAPED:
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.value, ast.Constant):
                assert statement.value.value is None, f"{node.name}.{statement.target.id}"
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.value, ast.Tuple):
                assert not statement.value.elts, f"{node.name}.{statement.target.id}"


def test_an_empty_file_and_environment_give_exactly_the_dataclass_defaults(tmp_path):
    """load_settings (through the models) and `Settings()` (through the dataclasses) agree on every default."""
    empty = tmp_path / "mkpi.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    assert load_settings(empty, environ={}) == Settings(config_path=str(empty))


def test_the_defaults_are_the_documented_figures():
    """Stated by hand from docs/configuration.md: the public shape reads them without a file."""
    ga4 = GA4Settings()
    assert (ga4.page_size, ga4.timeout_seconds, ga4.parallel_accounts, ga4.reread_days) == (250_000, 60.0, 10, 3)
    warehouse = WarehouseSettings()
    assert (warehouse.backend, warehouse.duckdb_path, warehouse.ducklake_data_path) == (
        "duckdb", "data/marketing.duckdb", "data/lake")
    assert warehouse.ducklake_catalog is None
    settings = Settings()
    assert (settings.reporting_timezone, settings.reporting_currency, settings.fx_source) == ("Europe/Paris", "EUR",
                                                                                             "ecb")
    assert settings.search_console.search_types == ("web",) and settings.alerts.email.security == "starttls"
    assert settings.hubspot.extra_properties == {} and settings.hubspot.extra_properties is not \
        Settings().hubspot.extra_properties  # a fresh mapping per instance, never shared


def test_a_shape_field_without_a_model_default_is_refused_at_definition():
    with pytest.raises(TypeError, match="needs a default written here"):
        @settings_module._shaped_by(settings_module.GA4File)
        class Broken:
            property_ids: tuple[str, ...]
            not_in_the_file: str


def test_secrets_stay_out_of_the_models():
    """The secret fields of the public shape are never model fields (the file cannot hold them)."""
    for node, decorator in SHAPED:
        model, _ = _model_of(decorator)
        hints = inspect.get_annotations(getattr(settings_module, node.name))
        for name, hint in hints.items():
            if "Secret" in str(hint):
                assert name not in model.model_fields, f"{node.name}.{name}"
    assert Secret("x") != Secret("y")
