"""The workflow's config schema (workflow/schemas/config.schema.yaml, JSON Schema draft 2020-12):
loading it, validating with its defaults filled in, readable errors with key paths, and one
stage's settings with its defaults. The schema is the only owner of defaults. Light: it imports
no problem and no torch, so every stage (the topology's torch-free environment too) can use it.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml
from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration that must not run; the message lists every offending key path."""


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(path.read_text())


def _is_integer(checker, instance) -> bool:
    """Integers only: JSON Schema would take 11.0, which the stages then cannot use as a count."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(checker, instance) -> bool:
    """Finite numbers only: a NaN passes every bound (each comparison is false). Any int is
    finite (one too large for a float is still a number)."""
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and math.isfinite(instance))


TYPE_CHECKER = Draft202012Validator.TYPE_CHECKER.redefine_many(
    {"integer": _is_integer, "number": _is_number})


def _validator_filling_defaults() -> type:
    """Draft 2020-12 validator that also writes each property's `default` into the instance;
    integers must be ints and numbers finite."""
    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if isinstance(subschema, dict) and "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(Draft202012Validator, {"properties": properties_with_defaults},
                                        type_checker=TYPE_CHECKER)


def key_path(parts: Iterable[Any]) -> str:
    """['experiments', 0, 'grid', 'lr', 1] -> 'experiments[0].grid.lr[1]'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        allowed = sorted(error.schema.get("properties", {}))
        message += f"; allowed keys: {', '.join(allowed)}"
    if error.validator == "type" and isinstance(error.instance, str) and _looks_numeric(error.instance):
        message += (f" (YAML reads {error.instance} as text: write the number with a dot and a "
                    "signed exponent, e.g. 1.0e-4 or 1.0e+8)")
    if error.validator == "contains" and "const" in (error.validator_value or {}):
        message += f" (it must contain {error.validator_value['const']!r})"
    if isinstance(error.instance, float) and not math.isfinite(error.instance):
        message += " (NaN and infinite values are not allowed)"
    elif isinstance(error.instance, float) and error.instance.is_integer() and "integer" in str(error.schema):
        message += f" (write the integer {int(error.instance)}, not {error.instance})"
    return f"{key_path(error.absolute_path)}: {message}"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (plain YAML keeps the last
    silently, so a second `landscapes:` block would replace the first unseen)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                                  f"(first given on line {seen[key] + 1}); give each key once")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> Any:
    """A YAML file with the safe loader, duplicate keys refused; errors name the file."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None


def stage_settings(section: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """One stage's settings (`hessian`, `landscape`, `topology`, ...) with the schema's
    defaults filled in, for calls of the library outside the workflow; raises ConfigError
    naming a wrong key or value. The schema is the only owner of the defaults."""
    defs = load_schema()["$defs"]
    section_schema = copy.deepcopy(defs["landscape"] if section == "landscape"
                                   else defs["experiment"]["properties"][section])
    section_schema.pop("required", None)
    section_schema["$defs"] = defs
    filled = copy.deepcopy(settings or {})
    errors = [f"{section}.{_describe(error)}"
              for error in _validator_filling_defaults()(section_schema).iter_errors(filled)]
    if errors:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(errors))
    return filled
