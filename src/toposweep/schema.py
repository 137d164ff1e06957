"""The workflow's config schema (workflow/schemas/config.schema.yaml, JSON Schema draft 2020-12):
loading it, validating with its defaults filled in, readable errors with key paths, and one
stage's settings with its defaults. The schema is the only owner of defaults. Light: it imports
no problem and no torch, so every stage (the topology's torch-free environment too) can use it.
"""

from __future__ import annotations

import copy
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


def _validator_filling_defaults() -> type:
    """Draft 2020-12 validator that also writes each property's `default` into the instance."""
    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if isinstance(subschema, dict) and "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(Draft202012Validator, {"properties": properties_with_defaults})


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
    return f"{key_path(error.absolute_path)}: {message}"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
