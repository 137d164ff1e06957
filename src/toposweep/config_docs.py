"""The key tables of config/README.md, generated from the config schema and the built-in
problems' declarations (the schema and the problems own every default, bound and description).

Each table sits in config/README.md between marker comments::

    <!-- generated: hessian -->
    | key | default | allowed | meaning |
    ...
    <!-- end generated -->

and the prose around them is written by hand. Regenerate, or check, with::

    python -m toposweep.config_docs --write config/README.md
    python -m toposweep.config_docs --check config/README.md   # exit 1 naming stale sections

Neither imports Snakemake or torch (the problem modules load torch on first use only).
"""

from __future__ import annotations

import argparse
import re
from decimal import Decimal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import problem_settings_schema
from .schema import SCHEMA_PATH, load_schema
from .problems import BUILT_IN, get_problem

README_PATH = SCHEMA_PATH.parents[2] / "config" / "README.md"
COMMAND = "python -m toposweep.config_docs --write config/README.md"
BEGIN = re.compile(r"^<!-- generated: (?P<name>[^ ]+) -->$", re.MULTILINE)
END = "<!-- end generated -->"
PROBLEM_PREFIX = "problem/"


@dataclass(frozen=True)
class Section:
    """One table: the JSON-Schema `properties` it lists, which of them are required, and (for a
    problem) which are sweepable."""

    name: str
    properties: dict[str, Any]
    required: tuple[str, ...] = ()
    sweepable: tuple[str, ...] | None = None


def schema_sections(schema: dict | None = None) -> list[Section]:
    """The schema's tables, in the order of config/README.md. `schema_owners` names, for each,
    where its properties sit in the schema."""
    schema = load_schema() if schema is None else schema
    return [Section(name, properties, tuple(required))
            for name, (_, properties, required) in _schema_owners(schema).items()]


def schema_owners(schema: dict | None = None) -> dict[str, tuple[str, ...]]:
    """Section name -> the key path in the schema of the `properties` its table lists."""
    schema = load_schema() if schema is None else schema
    return {name: path for name, (path, _, _) in _schema_owners(schema).items()}


def _schema_owners(schema: dict) -> dict[str, tuple[tuple[str, ...], dict, list]]:
    defs = schema["$defs"]
    experiment = defs["experiment"]
    owners = {
        "experiment": (("$defs", "experiment"), experiment),
        "landscape": (("$defs", "landscape"), defs["landscape"]),
    }
    for key in ("snapshots", "topology", "hessian", "aggregate", "figures"):
        owners[key] = (("$defs", "experiment", "properties", key), experiment["properties"][key])
    owners["top-level"] = ((), schema)
    owners["cluster"] = (("properties", "cluster"), schema["properties"]["cluster"])
    return {name: (path, node["properties"], node.get("required", []))
            for name, (path, node) in owners.items()}


def problem_sections() -> list[Section]:
    """One table per built-in problem: its declared settings plus `device`."""
    sections = []
    for name in BUILT_IN:
        problem = get_problem(name)
        properties = problem_settings_schema(problem)["properties"]
        sections.append(Section(PROBLEM_PREFIX + name, properties, (), tuple(problem.sweepable)))
    return sections


def sections() -> list[Section]:
    return schema_sections() + problem_sections()


# --- rendering ------------------------------------------------------------------------------


def render_table(section: Section, defs: dict | None = None) -> str:
    """The Markdown table of one section (no trailing newline)."""
    defs = load_schema()["$defs"] if defs is None else defs
    sweep = section.sweepable is not None
    header = "| key | default | allowed |" + (" sweepable |" if sweep else "") + " meaning |"
    rule = "|---|---|---|" + ("---|" if sweep else "") + "---|"
    rows = [header, rule]
    for key, raw in section.properties.items():
        spec = resolve(raw, defs)
        cells = [f"`{key}`", render_default(spec, key in section.required), render_allowed(spec, defs)]
        if sweep:
            cells.append("yes" if key in section.sweepable else "")
        cells.append(render_meaning(spec))
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows)


def resolve(spec: dict, defs: dict) -> dict:
    """`spec` with a local `$ref: "#/$defs/<name>"` merged in (local keys win)."""
    reference = spec.get("$ref")
    if not reference:
        return spec
    prefix = "#/$defs/"
    if not reference.startswith(prefix) or reference[len(prefix):] not in defs:
        raise ValueError(f"cannot resolve $ref {reference!r}")
    target = resolve(defs[reference[len(prefix):]], defs)
    merged = {**target, **spec}
    merged.pop("$ref")
    return merged


def render_value(value: Any) -> str:
    """A YAML value as one would write it in the config, in backticks: `1.0`, `null`, `[0]`,
    `1.0e-4` (a dot and a signed exponent: what YAML 1.1 reads as a number)."""
    if isinstance(value, float):
        return f"`{_float(value)}`"
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), sort_keys=False)
    text = text.strip().removesuffix("...").strip()
    return f"`{text}`"


def _float(value: float) -> str:
    """Shortest round-trip text of a float; small and large ones as `1.0e-4`, `2.5e+8`."""
    if value != value:
        return ".nan"
    if abs(value) == float("inf"):
        return "-.inf" if value < 0 else ".inf"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)
    digits = Decimal(repr(value)).normalize().as_tuple()
    mantissa = "".join(map(str, digits.digits))
    exponent = digits.exponent + len(mantissa) - 1
    sign = "-" if digits.sign else ""
    return f"{sign}{mantissa[0]}.{mantissa[1:] or '0'}e{exponent:+d}"


def render_default(spec: dict, required: bool) -> str:
    if required:
        return "required"
    if "default" not in spec:
        return "none"
    return render_value(spec["default"])


def render_meaning(spec: dict) -> str:
    description = spec.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"no description in {spec}")
    return " ".join(description.split())


def render_allowed(spec: dict, defs: dict) -> str:
    """Readable allowed values: enums in backticks, bounds as `≥ 1` / `> 0` / `8 … 64`, types,
    `or null`."""
    spec = resolve(spec, defs)
    if "enum" in spec:
        return ", ".join(render_value(value) for value in spec["enum"])
    if "const" in spec:
        return render_value(spec["const"])
    for combinator in ("oneOf", "anyOf"):
        if combinator in spec:
            return " or ".join(render_allowed(option, defs) for option in spec[combinator])
    types = spec.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    nullable = "null" in types
    types = [name for name in types if name != "null"]
    parts = [_render_type(name, spec, defs) for name in types] or ["any value"]
    return " or ".join(parts + (["null"] if nullable else []))


TYPE_NAMES = {"object": "mapping", "array": "list"}


def _render_type(name: str, spec: dict, defs: dict) -> str:
    if name in ("integer", "number"):
        return _render_number(name, spec)
    if name == "string":
        text = "string"
        if spec.get("minLength", 0) >= 1:
            text = "non-empty string"
        if "pattern" in spec:
            text += f" matching `{spec['pattern']}`"
        return text
    if name == "array":
        return _render_array(spec, defs)
    if name == "object":
        text = "non-empty mapping" if spec.get("minProperties", 0) >= 1 else "mapping"
        if "properties" in spec:
            text += " (own table)"
        return text
    return TYPE_NAMES.get(name, name)


def _number(value: Any) -> str:
    return render_value(value).strip("`")


def _render_number(name: str, spec: dict) -> str:
    low, high = spec.get("minimum"), spec.get("maximum")
    low_open, high_open = spec.get("exclusiveMinimum"), spec.get("exclusiveMaximum")
    if (low is not None or low_open is not None) and (high is not None or high_open is not None):
        if name == "integer" and low is not None and high is not None:
            return f"integer {_number(low)} … {_number(high)}"
        left = f"({_number(low_open)}" if low_open is not None else f"[{_number(low)}"
        right = f"{_number(high_open)})" if high_open is not None else f"{_number(high)}]"
        return f"{name} in {left}, {right}"
    if low is not None:
        return f"{name} ≥ {_number(low)}"
    if low_open is not None:
        return f"{name} > {_number(low_open)}"
    if high is not None:
        return f"{name} ≤ {_number(high)}"
    if high_open is not None:
        return f"{name} < {_number(high_open)}"
    return name


def _render_array(spec: dict, defs: dict) -> str:
    text = "non-empty list" if spec.get("minItems", 0) >= 1 else "list"
    items = spec.get("items")
    if not isinstance(items, dict):
        return text + (" of distinct values" if spec.get("uniqueItems") else "")
    of = " of distinct " if spec.get("uniqueItems") else " of "
    if "$ref" in items:
        return f"{text}{of}{items['$ref'].rsplit('/', 1)[-1]} specs (own table)"
    first, _, rest = render_allowed(items, defs).partition(" ")
    plural = first + "s" if first in ("integer", "number", "string", "boolean", "mapping") else first
    return f"{text}{of}{plural}{' ' + rest if rest else ''}"


def _cell(text: str) -> str:
    """Table-safe cell text: `|` escaped, no line breaks."""
    return " ".join(text.replace("|", "\\|").split())


# --- the README's marked blocks -------------------------------------------------------------


class StaleDocs(ValueError):
    """config/README.md's marked tables differ from the generated ones."""


def generated_tables() -> dict[str, str]:
    """Section name -> its Markdown table."""
    defs = load_schema()["$defs"]
    return {section.name: render_table(section, defs) for section in sections()}


def marked_blocks(text: str) -> dict[str, str]:
    """Section name -> the text between its markers (without the surrounding newlines)."""
    blocks = {}
    for match in BEGIN.finditer(text):
        end = text.find(END, match.end())
        if end < 0:
            raise StaleDocs(f"<!-- generated: {match['name']} --> has no {END}")
        if match["name"] in blocks:
            raise StaleDocs(f"section {match['name']!r} is marked twice")
        blocks[match["name"]] = text[match.end():end].strip("\n")
    return blocks


def problems_with(text: str, tables: dict[str, str]) -> list[str]:
    """What is wrong with the marked blocks of `text`, one line per section."""
    blocks = marked_blocks(text)
    messages = [f"{name}: no <!-- generated: {name} --> block" for name in tables if name not in blocks]
    messages += [f"{name}: marked, but no such table (known: {', '.join(tables)})"
                 for name in blocks if name not in tables]
    messages += [f"{name}: stale (differs from the schema / problem declarations)"
                 for name, table in tables.items() if name in blocks and blocks[name] != table]
    return messages


def rewrite(text: str, tables: dict[str, str]) -> str:
    """`text` with every marked block replaced by its generated table."""
    missing = [name for name in tables if name not in marked_blocks(text)]
    unknown = [name for name in marked_blocks(text) if name not in tables]
    if missing or unknown:
        raise StaleDocs("cannot place every table: " + "; ".join(
            [f"no <!-- generated: {name} --> block" for name in missing]
            + [f"unknown block {name!r}" for name in unknown]))

    def replace(match: re.Match) -> str:
        return f"{match.group(1)}\n{tables[match.group(2)]}\n{END}"

    pattern = re.compile(r"(^<!-- generated: ([^ ]+) -->$).*?" + re.escape(END), re.DOTALL | re.MULTILINE)
    return pattern.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toposweep.config_docs",
                                     description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", metavar="README", type=Path, nargs="?", const=README_PATH,
                        help="rewrite the marked tables of this file in place")
    action.add_argument("--check", metavar="README", type=Path, nargs="?", const=README_PATH,
                        help="exit 1 if the marked tables of this file are stale")
    args = parser.parse_args(argv)
    tables = generated_tables()
    if args.write is None and args.check is None:
        for name, table in tables.items():
            print(f"<!-- generated: {name} -->\n{table}\n{END}\n")
        return 0
    path = args.write or args.check
    text = path.read_text()
    if args.check is not None:
        messages = problems_with(text, tables)
        if messages:
            print(f"{path} is out of date with the schema and the problems' declarations:\n  "
                  + "\n  ".join(messages) + f"\nregenerate with: {COMMAND}", file=sys.stderr)
            return 1
        print(f"{path}: {len(tables)} generated tables up to date")
        return 0
    new = rewrite(text, tables)
    if new != text:
        path.write_text(new)
        print(f"{path}: tables rewritten")
    else:
        print(f"{path}: already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
