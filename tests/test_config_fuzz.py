"""Seeded fuzzing of configuration validation (toposweep.config).

Mutants of the shipped configurations (config/config.yaml, config/paper/*.yaml,
tests/data/tiny_sweep.yaml), made from their parsed dicts (raw and with the defaults filled in, so
that hessian, topology, aggregate, figures and snapshots have keys to hit) and from their YAML text.
Every mutant must either

* raise ConfigError whose message names a key path (`experiments[0]...`, `<top level>`,
  `line N`), or
* validate into a configuration that expand_runs takes and whose every mapping key is a key of
  the schema (workflow/schemas/config.schema.yaml, with each experiment's `settings` from its
  problem's settings_schema plus `device` and its `grid` from the problem's `sweepable`), every
  value of the declared type (integers are ints, numbers finite) and every required key present.

Any other exception, a crash of expand_runs, or an accepted configuration that breaks the schema is
a failure; they are collected and reported together (the first few mutants per kind of failure,
with tracebacks). The generator is `random.Random(seed)`, seed fixed (overridable with the
environment variable TOPOSWEEP_FUZZ_SEED), so a failure reproduces.

Size and time: 616 mutants (506 from dicts through validate_config, 110 from YAML text through
load_config; see COUNTS), about 17 s on 2 shared CPU cores (1,006 took 29 s; the issue asks for
at least 500).
"""

from __future__ import annotations

import copy
import math
import os
import random
import re
import reprlib
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toposweep.config import ConfigError, expand_runs, load_config, validate_config
from toposweep.problems import get_problem

from conftest import REPO

SEED = int(os.environ.get("TOPOSWEEP_FUZZ_SEED", "20240611"))

BASE_FILES = [REPO / "config" / "config.yaml", *sorted((REPO / "config" / "paper").glob("*.yaml")),
              REPO / "tests" / "data" / "tiny_sweep.yaml"]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
DEVICE_SCHEMA = {"enum": ["auto", "cpu", "cuda"]}

# Mutants per kind (dict kinds go through validate_config, text kinds through load_config).
COUNTS = {
    "type_change": 100,
    "special_value": 100,
    "delete_required": 50,
    "delete_random": 60,
    "rename_key": 80,
    "huge_landscape": 50,
    "stacked": 60,
    "root_not_mapping": 6,
    "duplicate_key_text": 50,
    "value_text": 60,
}
SECTIONS = ("top", "experiment", "settings", "grid", "landscapes", "hessian", "topology",
            "aggregate", "figures", "snapshots")

NAN, INF = float("nan"), float("inf")
# Huge numbers: floats, 64-bit and wider ints, an int just inside the float range (10**200) and
# one wider than any float (10**400).
HUGE = [1e300, -1e300, 2 ** 63, 10 ** 30, 10 ** 200, 10 ** 400]
# `dimensions` is an exponent (resolution ** dimensions) and hessian `k` a range() in the semantic
# checks: 10**30 there would hang this test itself, so they get huge values that stay cheap.
HUGE_CHEAP = {"dimensions": [1e300, 5000, 10 ** 400], "k": [1e300, 5000, 10 ** 400]}
HUGE_TOKEN = "1" + "0" * 200  # 10**200 written out
# Values of YAML text that read as something other than they look (YAML 1.1 via PyYAML).
YAML_TOKENS = [".nan", ".NaN", ".inf", "-.inf", "1.0e+300", "-1.0e+300", "1e300", "1e-3", "11.0",
               "-1", "-0.5", "0", "''", '""', "[]", "{}", "~", "null", "yes", "no", "on",
               "2024-01-01", "0x10", "0o17", "1_000", '"1"', HUGE_TOKEN, "1" + "0" * 400, "-" + "9" * 400,
               "!!binary aGVsbG8=", "!!python/name:os.system", "*undefined_alias",
               "[1, [2]]", "{a: 1}", "[.nan]", "[]  # emptied", "'a: b'"]
KEY_PATH_LINE = re.compile(r"^(<top level>|(experiments|available_runs_only|cluster)(\[\d+\]|\.[^\s:.\[]+)*):")
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<dash>- )?(?P<key>[A-Za-z_][\w]*):(?P<rest>( .*)?)$")


class _ShortRepr(reprlib.Repr):
    """reprlib with a guard for ints too wide for str() (Python's 4300-digit limit)."""

    def repr_int(self, x, level):
        if x.bit_length() > 1000:
            return f"<int of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return super().repr_int(x, level)


_SHORT = _ShortRepr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 80, 80, 8, 8
short = _SHORT.repr


@dataclass
class Mutant:
    kind: str
    base: str
    steps: list[str] = field(default_factory=list)
    config: Any = None            # dict kinds: what validate_config gets
    text: str | None = None       # text kinds: what load_config reads
    must_reject: bool = False
    expected: str | None = None   # text that the ConfigError message must contain

    def describe(self) -> str:
        where = "; ".join(self.steps)
        return f"[{self.kind}] base {self.base}: {where}"


# ----- tree helpers -------------------------------------------------------------------------------

def all_paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    paths = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        paths.append(prefix + (key,))
        paths += all_paths(value, prefix + (key,))
    return paths


def section_of(path: tuple) -> str:
    if path[0] != "experiments" or len(path) == 1:
        return "top"
    if len(path) == 2 or path[2] not in SECTIONS:
        return "experiment"
    return path[2]


def get_at(tree: Any, path: tuple) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def text_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def typo(rng: random.Random, key: Any) -> Any:
    """A misspelt key: a letter dropped, case swapped, a suffix; or a key that is no string (what
    YAML makes of `yes:`, `1:`, `~:`)."""
    if not isinstance(key, str) or not key:
        return f"{key}_"
    how = rng.choice(["drop", "drop", "swapcase", "capitalize", "suffix", "suffix", "not_str"])
    if how == "drop" and len(key) > 1:
        i = rng.randrange(len(key))
        return key[:i] + key[i + 1:]
    if how == "swapcase":
        return key.swapcase()
    if how == "capitalize" and key[0].islower():
        return key[0].upper() + key[1:]
    if how == "not_str":
        return rng.choice([True, 1, None, 0.5])
    return key + rng.choice(["s", "_", "2", "_x", "-"])


def other_type(rng: random.Random, value: Any) -> Any:
    """A value of another type made from `value`."""
    if isinstance(value, bool):
        return rng.choice([str(value).lower(), int(value), [value], {"value": value}, None])
    if isinstance(value, int):
        as_float = float(value) + 0.5 if value.bit_length() < 1000 else 1e300
        return rng.choice([str(value), as_float, [value], {"value": value}, True, None])
    if isinstance(value, float):
        return rng.choice([str(value), [value], {"value": value}, False, None, f"{value:e}"])
    if isinstance(value, str):
        return rng.choice([[value], {value: value}, 0, 1.5, True, None, value.encode()])
    if isinstance(value, list):
        return rng.choice([{str(i): v for i, v in enumerate(value)}, len(value), "[]", None,
                           value[0] if value else 0, True])
    if isinstance(value, dict):
        return rng.choice([list(value), list(value.values()), len(value), "{}", None, False])
    if value is None:
        return rng.choice([0, "", [], {}, "null", False])
    return str(value)


def special(rng: random.Random, key: Any, value: Any) -> tuple[str, Any]:
    kind = rng.choice(["nan", "inf", "-inf", "integral_float", "negative", "huge", "huge",
                       "empty_string", "empty_list"])
    if kind == "nan":
        return kind, NAN
    if kind == "inf":
        return kind, INF
    if kind == "-inf":
        return kind, -INF
    if kind == "integral_float":
        if isinstance(value, int) and not isinstance(value, bool):
            return kind, float(value)
        return kind, rng.choice([11.0, 1.0, 0.0, 3.0])
    if kind == "negative":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value:
            return kind, -abs(value)
        return kind, rng.choice([-1, -0.5, -1e-12])
    if kind == "huge":
        return kind, rng.choice(HUGE_CHEAP.get(key, HUGE))
    if kind == "empty_string":
        return kind, ""
    return kind, []


# ----- dict mutations -----------------------------------------------------------------------------

def pick_path(rng: random.Random, config: Any) -> tuple | None:
    """A random key path, its section chosen first so every section is hit."""
    by_section = defaultdict(list)
    for path in all_paths(config):
        by_section[section_of(path)].append(path)
    if not by_section:
        return None
    return rng.choice(by_section[rng.choice(sorted(by_section))])


def replace_key(mapping: dict, old: Any, new: Any) -> None:
    """Rename in place, keeping the order of the keys."""
    items = [(new if key == old else key, value) for key, value in mapping.items()]
    mapping.clear()
    mapping.update(items)


def mutate_once(rng: random.Random, config: Any, kind: str, sections: Counter) -> str | None:
    """Apply one mutation of `kind` to `config` in place; a description, or None if none fits."""
    if kind in ("type_change", "special_value", "delete_random", "rename_key"):
        path = pick_path(rng, config)
        if path is None:
            return None
        parent, key = get_at(config, path[:-1]), path[-1]
        sections[section_of(path)] += 1
        old = parent[key]
        if kind == "type_change":
            parent[key] = new = other_type(rng, old)
            return f"{text_path(path)}: {short(old)} -> {short(new)}"
        if kind == "special_value":
            label, new = special(rng, key, old)
            if isinstance(old, list) and rng.random() < 0.4:
                old_copy = short(old)
                old.insert(rng.randint(0, len(old)), new)
                return f"{text_path(path)}: {old_copy} + {label} {short(new)}"
            parent[key] = new
            return f"{text_path(path)}: {short(old)} -> {label} {short(new)}"
        if kind == "delete_random":
            del parent[key]
            return f"del {text_path(path)}"
        if not isinstance(parent, dict):
            return None
        new_key = typo(rng, key)
        if new_key in parent:
            return None
        replace_key(parent, key, new_key)
        return f"rename {text_path(path)} -> {short(new_key)}"
    if kind == "huge_landscape":
        experiments = config.get("experiments") if isinstance(config, dict) else None
        if not isinstance(experiments, list) or not experiments or not isinstance(experiments[0], dict):
            return None
        index = rng.randrange(len(experiments))
        experiment = experiments[index]
        if not isinstance(experiment, dict):
            return None
        sections["landscapes"] += 1
        landscapes = experiment.setdefault("landscapes", [{"name": "main"}])
        if not isinstance(landscapes, list) or not landscapes or rng.random() < 0.4:
            landscape = {"name": f"huge{rng.randrange(100)}"}
            experiment["landscapes"] = landscapes = [*landscapes, landscape] if isinstance(landscapes, list) else [landscape]
        else:
            landscape = rng.choice(landscapes)
            if not isinstance(landscape, dict):
                return None
        landscape.update(resolution=201, dimensions=rng.randint(4, 8))
        if rng.random() < 0.5:
            landscape["allow_high_dimensions"] = True
        if rng.random() < 0.5:
            landscape["max_points"] = rng.choice([10 ** 8, 10 ** 9, 10 ** 12, 10 ** 17, 10 ** 40])
        if rng.random() < 0.3:
            landscape["directions"] = rng.choice(["random", "hessian", "trajectory_pca"])
            if landscape["directions"] == "hessian" and rng.random() < 0.5:
                experiment["hessian"] = {"k": 8}
        return f"experiments[{index}].landscapes += {short(landscape)}"
    raise AssertionError(kind)


def delete_required(rng: random.Random, config: dict, sections: Counter) -> str | None:
    choices = [("experiments",)]
    for i, experiment in enumerate(config["experiments"]):
        choices += [("experiments", i, "name"), ("experiments", i, "problem")]
        for j, _ in enumerate(experiment.get("landscapes", [])):
            choices.append(("experiments", i, "landscapes", j, "name"))
    path = rng.choice(choices)
    sections[section_of(path)] += 1
    del get_at(config, path[:-1])[path[-1]]
    return f"del {text_path(path)}"


def dict_mutants(rng: random.Random, bases: list[tuple[str, dict]], sections: Counter) -> list[Mutant]:
    mutants = []
    for kind in ("type_change", "special_value", "delete_random", "rename_key", "huge_landscape",
                 "stacked", "delete_required"):
        while sum(m.kind == kind for m in mutants) < COUNTS[kind]:
            name, base = rng.choice(bases)
            mutant = Mutant(kind, name, config=copy.deepcopy(base))
            if kind == "delete_required":
                mutant.steps.append(delete_required(rng, mutant.config, sections))
                mutant.must_reject = True
            else:
                for _ in range(rng.randint(2, 4) if kind == "stacked" else 1):
                    step_kind = (rng.choice(["type_change", "special_value", "delete_random",
                                             "rename_key", "huge_landscape"])
                                 if kind == "stacked" else kind)
                    step = mutate_once(rng, mutant.config, step_kind, sections)
                    if step is not None:
                        mutant.steps.append(step)
            if mutant.steps:
                mutants.append(mutant)
    for value in rng.sample([[], ["experiments"], 0, "experiments", None, 1.5, True], COUNTS["root_not_mapping"]):
        mutants.append(Mutant("root_not_mapping", "-", [f"<root> -> {short(value)}"], config=value))
    return mutants


# ----- YAML text mutations ------------------------------------------------------------------------

def indentation(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def is_filler(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def duplicate_key(rng: random.Random, name: str, text: str) -> Mutant | None:
    """A `key:` line (with its block) given a second time in its mapping; load_config must name
    the key and the line of the second one."""
    lines = text.splitlines()
    candidates = [i for i, line in enumerate(lines) if KEY_LINE.match(line)]
    flows = [i for i, line in enumerate(lines) if re.search(r"\{\s*\w+:[^{}]*\}\s*(#.*)?$", line)]
    if flows and rng.random() < 0.15:
        i = rng.choice(flows)
        inner = re.search(r"\{([^{}]*)\}", lines[i])
        first = inner.group(1).split(",")[0].strip()
        key = first.split(":")[0].strip()
        lines[i] = lines[i][:inner.end() - 1] + f", {first}" + lines[i][inner.end() - 1:]
        return Mutant("duplicate_key_text", name, [f"line {i + 1}: flow mapping gets {first!r} again"],
                      text="\n".join(lines) + "\n", must_reject=True,
                      expected=f"line {i + 1}: duplicate key {key!r} (first given on line {i + 1})")
    i = rng.choice(candidates)
    match = KEY_LINE.match(lines[i])
    key, key_indent = match["key"], len(match["indent"]) + (2 if match["dash"] else 0)
    end_of_block = i + 1  # the key's own block: deeper lines (or a list at the key's indentation)
    scan = i + 1
    while scan < len(lines):
        line = lines[scan]
        if is_filler(line):
            scan += 1
            continue
        if indentation(line) > key_indent or (indentation(line) == key_indent and line.lstrip().startswith("- ")):
            scan += 1
            end_of_block = scan
            continue
        break
    block = [" " * key_indent + key + ":" + match["rest"]] + lines[i + 1:end_of_block]
    end_of_mapping = end_of_block  # the siblings that follow, up to a line of smaller indentation
    while scan < len(lines):
        line = lines[scan]
        if is_filler(line):
            scan += 1
            continue
        if indentation(line) < key_indent:
            break
        scan += 1
        end_of_mapping = scan
    at = rng.choice([end_of_block, end_of_mapping])
    lines[at:at] = block
    return Mutant("duplicate_key_text", name,
                  [f"{key!r} of line {i + 1} given again on line {at + 1} ({len(block)} lines)"],
                  text="\n".join(lines) + "\n", must_reject=True,
                  expected=f"line {at + 1}: duplicate key {key!r} (first given on line {i + 1})")


def replace_value_text(rng: random.Random, name: str, text: str) -> Mutant | None:
    """An inline value (or one element of an inline list) written as a surprising YAML token."""
    lines = text.splitlines()
    candidates = []
    for i, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if match and match["rest"].strip() and not match["rest"].strip().startswith("#"):
            candidates.append(i)
    i = rng.choice(candidates)
    match = KEY_LINE.match(lines[i])
    value = match["rest"].split(" #")[0].strip()
    token = rng.choice(YAML_TOKENS)
    if match["key"] in HUGE_CHEAP and token == HUGE_TOKEN:
        token = "5000"  # see HUGE_CHEAP: 10**200 there would hang this test
    if value.startswith("[") and value.endswith("]") and "," in value and rng.random() < 0.5:
        elements = [e.strip() for e in value[1:-1].split(",")]
        elements[rng.randrange(len(elements))] = token
        new_value = "[" + ", ".join(elements) + "]"
    else:
        new_value = token
    lines[i] = f"{match['indent']}{match['dash'] or ''}{match['key']}: {new_value}"
    shown = new_value if len(new_value) < 60 else new_value[:30] + "..."
    return Mutant("value_text", name, [f"line {i + 1}: {match['key']}: {value} -> {shown}"],
                  text="\n".join(lines) + "\n")


def text_mutants(rng: random.Random, texts: list[tuple[str, str]]) -> list[Mutant]:
    mutants = []
    for kind, make in (("duplicate_key_text", duplicate_key), ("value_text", replace_value_text)):
        while sum(m.kind == kind for m in mutants) < COUNTS[kind]:
            name, text = rng.choice(texts)
            mutant = make(rng, name, text)
            if mutant is not None:
                mutants.append(mutant)
    return mutants


# ----- the oracle: an accepted configuration against the schema -----------------------------------

def resolve(schema: dict) -> dict:
    if "$ref" in schema:
        target = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def has_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value))
    return {"string": str, "boolean": bool, "array": list, "object": dict,
            "null": type(None)}[name] is type(value)


def schema_problems(value: Any, schema: dict, path: str) -> list[str]:
    """What in `value` the schema does not allow: keys it does not declare, required keys
    missing, values of another type or not in the enum (the oracle; independent of jsonschema)."""
    schema = resolve(schema)
    if "oneOf" in schema:
        branches = [schema_problems(value, branch, path) for branch in schema["oneOf"]]
        return [] if any(not b for b in branches) else [f"{path}: {short(value)} fits no branch of oneOf"]
    problems = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(has_type(value, t) for t in types):
            problems.append(f"{path}: {short(value)} is not {types}")
    if "enum" in schema and not any(type(value) is type(e) and value == e for e in schema["enum"]):
        problems.append(f"{path}: {short(value)} is not one of {schema['enum']}")
    if "const" in schema and not (type(value) is type(schema["const"]) and value == schema["const"]):
        problems.append(f"{path}: {short(value)} is not {schema['const']!r}")
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{path}: {value} is not finite")
    if isinstance(value, dict):
        properties = schema.get("properties")
        if properties is None:
            problems.append(f"{path}: a mapping where the schema declares no keys")
            return problems
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{path}: required key {key!r} missing")
        for key, item in value.items():
            if key not in properties:
                problems.append(f"{path}: unknown key {short(key)}")
            else:
                problems += schema_problems(item, properties[key], f"{path}.{key}")
    elif isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            if items is None and isinstance(item, (dict, list)):
                problems.append(f"{path}[{i}]: a container where the schema declares no items")
            elif items is not None:
                problems += schema_problems(item, items, f"{path}[{i}]")
    return problems


def config_problems(config: Any) -> list[str]:
    """Everything in a configuration validate_config accepted that the schema does not allow."""
    if not isinstance(config, dict):
        return [f"accepted a {type(config).__name__}"]
    top = {**SCHEMA, "required": []}  # the experiments are checked below, each with its problem
    problems = schema_problems({k: v for k, v in config.items() if k != "experiments"}, top,
                               "<top level>")
    experiments = config.get("experiments")
    if not isinstance(experiments, list) or not experiments:
        return problems + ["<top level>.experiments: not a non-empty list"]
    for i, experiment in enumerate(experiments):
        where = f"experiments[{i}]"
        if not isinstance(experiment, dict) or not isinstance(experiment.get("problem"), str):
            problems.append(f"{where}: no mapping with a problem")
            continue
        problem = get_problem(experiment["problem"])
        settings = {"type": "object", "properties": {**problem.settings_schema, "device": DEVICE_SCHEMA}}
        grid = {"type": "object", "properties": {
            key: {"type": "array", "items": problem.settings_schema[key]} for key in problem.sweepable}}
        schema = copy.deepcopy(SCHEMA["$defs"]["experiment"])
        schema["properties"]["settings"] = settings
        schema["properties"]["grid"] = grid
        problems += schema_problems(experiment, schema, where)
        for key in schema["properties"]:
            if key not in experiment and key != "grid":
                problems.append(f"{where}: default of {key!r} not filled in")
        if isinstance(experiment.get("settings"), dict):
            missing = [key for key in problem.settings_schema if key not in experiment["settings"]]
            if missing:
                problems.append(f"{where}.settings: defaults not filled in: {missing}")
    return problems


# ----- running a mutant ---------------------------------------------------------------------------

def message_problems(message: str, prefix: str = "") -> list[str]:
    """A ConfigError message must name where: every listed problem starts with a key path; a YAML
    error names its line."""
    if prefix and message.startswith(prefix):
        message = message[len(prefix):]
    if re.match(r"line \d+: ", message):
        return []
    if message.startswith("not valid YAML:"):
        return [] if re.search(r"line \d+", message) else ["YAML error without a line"]
    header, _, rest = message.partition("\n")
    if header != "invalid configuration:":
        return [f"message names no key path: {message[:200]!r}"]
    listed = [line[2:] for line in rest.split("\n") if line.startswith("  ") and not line.startswith("   ")]
    bad = [line for line in listed if not KEY_PATH_LINE.match(line)]
    if not listed or bad:
        return [f"listed problem without a key path: {(bad or [rest])[0][:200]!r}"]
    return []


def check(mutant: Mutant, scratch: Path) -> tuple[str, str] | str:
    """"refused" or "accepted" when the mutant is handled as it must be; else (signature,
    details) of the failure."""
    prefix = ""
    try:
        if mutant.text is not None:
            scratch.write_text(mutant.text)
            prefix = f"{scratch}: "
            config = load_config(scratch)
        else:
            config = validate_config(mutant.config)
    except ConfigError as error:
        message = str(error)
        problems = message_problems(message, prefix)
        if mutant.expected is not None and mutant.expected not in message:
            problems.append(f"expected {mutant.expected!r} in the message")
        if problems:
            return "ConfigError message: " + problems[0][:60], f"{problems}\nmessage: {message[:1500]}"
        return "refused"
    except Exception as error:  # noqa: BLE001 - the point of the test
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        return f"{type(error).__name__} at {where}", traceback.format_exc(limit=-6)
    if mutant.must_reject:
        return "accepted a mutant that must be refused", f"validated: {short(config)}"
    try:
        runs = expand_runs(config)
        assert runs and all(isinstance(run.name, str) for run in runs)
    except Exception as error:  # noqa: BLE001
        frame = traceback.extract_tb(error.__traceback__)[-1]
        return (f"expand_runs: {type(error).__name__} at {Path(frame.filename).name}:{frame.lineno}",
                traceback.format_exc(limit=-6))
    problems = config_problems(config)
    if problems:
        return "accepted against the schema", "\n".join(problems[:10])
    return "accepted"


def load_bases() -> tuple[list[tuple[str, dict]], list[tuple[str, str]]]:
    dicts, texts = [], []
    for path in BASE_FILES:
        name = str(path.relative_to(REPO))
        text = path.read_text()
        raw = yaml.safe_load(text)
        filled = validate_config(raw)  # the shipped configs are valid, and stay so filled in
        assert validate_config(copy.deepcopy(filled)) == filled, name
        assert not config_problems(filled), (name, config_problems(filled))
        expand_runs(filled)
        texts.append((name, text))
        dicts += [(name, raw), (f"{name} (defaults filled)", filled)]
    return dicts, texts


def test_config_validation_fuzz(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # tiny_sweep names examples/regression/problem.py from the repo root
    started = time.perf_counter()
    rng = random.Random(SEED)
    dicts, texts = load_bases()
    sections: Counter = Counter()
    mutants = dict_mutants(rng, dicts, sections) + text_mutants(rng, texts)
    assert len(mutants) >= 500
    missing = [s for s in SECTIONS if not sections[s]]
    assert not missing, f"the generator hit no key of {missing}"

    failures: dict[str, list[tuple[Mutant, str]]] = defaultdict(list)
    outcomes: Counter = Counter()
    scratch = tmp_path / "mutant.yaml"
    for mutant in mutants:
        result = check(mutant, scratch)
        outcomes[mutant.kind, result if isinstance(result, str) else "FAILED"] += 1
        if not isinstance(result, str):
            failures[result[0]].append((mutant, result[1]))
    elapsed = time.perf_counter() - started
    summary = (f"seed {SEED} (TOPOSWEEP_FUZZ_SEED), {len(mutants)} mutants in {elapsed:.1f} s; "
               f"per kind: {dict(sorted(Counter(m.kind for m in mutants).items()))}; "
               f"outcomes: {dict(sorted(outcomes.items()))}; "
               f"sections hit: {dict(sections)}")
    print(summary)
    if failures:
        report = [summary, f"{sum(map(len, failures.values()))} mutants failed, "
                  f"{len(failures)} kinds of failure:"]
        for signature, cases in sorted(failures.items(), key=lambda item: -len(item[1])):
            report.append(f"\n=== {signature}: {len(cases)} mutants")
            for mutant, details in cases[:3]:
                report.append(f"--- {mutant.describe()}\n{details.rstrip()}")
        raise AssertionError("\n".join(report))
