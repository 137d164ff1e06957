"""config/README.md's key tables are generated from the schema and the built-in problems'
declarations (toposweep.config_docs); these tests fail when the file is stale, when a key has no
table, or when one of its YAML snippets is not a valid configuration."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from toposweep import config_docs
from toposweep.config import load_schema, problem_settings_schema, validate_config
from toposweep.problems import BUILT_IN, get_problem

from conftest import REPO

README = REPO / "config" / "README.md"
ROW_KEY = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def readme_blocks() -> dict[str, str]:
    return config_docs.marked_blocks(README.read_text())


def test_readme_tables_are_up_to_date():
    problems = config_docs.problems_with(README.read_text(), config_docs.generated_tables())
    assert not problems, ("config/README.md is stale:\n  " + "\n  ".join(problems)
                          + f"\nregenerate it with: {config_docs.COMMAND}")


def _property_owners(node, path=()):
    """Every `properties` mapping anywhere in the schema, by the path of the node holding it."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield path, node["properties"]
        for key, value in node.items():
            yield from _property_owners(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _property_owners(value, path + (index,))


def test_every_schema_key_and_problem_setting_has_a_row():
    """Walks the raw schema on its own (not through config_docs), so a nested section the
    generator does not know, or a key its table leaves out, fails here."""
    blocks = readme_blocks()
    owners = {path: name for name, path in config_docs.schema_owners().items()}
    for path, properties in _property_owners(load_schema()):
        where = "/".join(map(str, path)) or "<top level>"
        assert path in owners, f"schema properties at {where} have no generated table"
        name = owners[path]
        assert name in blocks, f"config/README.md has no <!-- generated: {name} --> block"
        rows = ROW_KEY.findall(blocks[name])
        assert sorted(rows) == sorted(properties), (name, sorted(set(properties) ^ set(rows)))
    for problem_name in BUILT_IN:
        problem = get_problem(problem_name)
        name = config_docs.PROBLEM_PREFIX + problem_name
        assert name in blocks, f"config/README.md has no table of {problem_name}'s settings"
        block = blocks[name]
        keys = ROW_KEY.findall(block)
        assert keys == list(problem_settings_schema(problem)["properties"]), problem_name
        for key in problem.sweepable:
            row = next(line for line in block.splitlines() if line.startswith(f"| `{key}` |"))
            assert row.split(" | ")[3] == "yes", f"{problem_name}.{key} is sweepable: {row}"


def test_check_names_the_stale_section(tmp_path):
    tables = config_docs.generated_tables()
    good = README.read_text()
    stale = good.replace(tables["hessian"], tables["hessian"].replace("`4`", "`5`", 1))
    assert stale != good
    assert config_docs.problems_with(stale, tables) == [
        "hessian: stale (differs from the schema / problem declarations)"]
    assert config_docs.rewrite(stale, tables) == good
    path = tmp_path / "README.md"
    path.write_text(stale)
    assert config_docs.main(["--check", str(path)]) == 1
    assert config_docs.main(["--write", str(path)]) == 0
    assert path.read_text() == good
    missing = good.replace("<!-- generated: snapshots -->", "<!-- snapshots -->")
    assert any(line.startswith("snapshots: no") for line in config_docs.problems_with(missing, tables))
    with pytest.raises(config_docs.StaleDocs, match="snapshots"):
        config_docs.rewrite(missing, tables)


def test_rendering_of_values_and_bounds():
    defs = load_schema()["$defs"]
    allowed = lambda spec: config_docs.render_allowed(spec, defs)  # noqa: E731
    assert allowed({"type": "integer", "minimum": 1}) == "integer ≥ 1"
    assert allowed({"type": "number", "exclusiveMinimum": 0}) == "number > 0"
    assert allowed({"type": "integer", "minimum": 8, "maximum": 64}) == "integer 8 … 64"
    assert allowed({"type": "number", "exclusiveMinimum": 0, "maximum": 1}) == "number in (0, 1]"
    assert allowed({"type": ["integer", "null"], "minimum": 1}) == "integer ≥ 1 or null"
    assert allowed({"enum": ["a", "b"]}) == "`a`, `b`"
    assert allowed({"$ref": "#/$defs/device"}) == "`auto`, `cpu`, `cuda`"
    assert allowed({"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"type": "integer", "minimum": 0}}) == \
        "non-empty list of distinct integers ≥ 0"
    assert [config_docs.render_value(v) for v in (1.0e-4, 2.0e+8, 0.5, None, [0], False)] == \
        ["`1.0e-4`", "`2.0e+8`", "`0.5`", "`null`", "`[0]`", "`false`"]


def test_rendering_imports_neither_torch_nor_snakemake():
    """lazy_loader puts a placeholder for torch into sys.modules; torch._C appears only once
    torch is really imported."""
    code = ("import sys, toposweep.config_docs as d; d.generated_tables(); "
            "print('torch._C' in sys.modules, 'snakemake' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=REPO)
    assert result.stdout.split() == ["False", "False"]


SNIPPET_EXPERIMENT = {"name": "snippet", "problem": "pinn_convection"}


def yaml_snippets() -> list:
    """Every ```yaml block of config/README.md, with its line number as the test id."""
    text = README.read_text()
    return [pytest.param(match.group(1), id=f"line {text[:match.start()].count(chr(10)) + 1}")
            for match in re.finditer(r"^```yaml\n(.*?)^```", text, re.DOTALL | re.MULTILINE)]


def test_readme_has_yaml_snippets():
    assert len(yaml_snippets()) >= 3


@pytest.mark.parametrize("snippet", yaml_snippets())
def test_readme_yaml_snippet_is_a_valid_config(snippet, monkeypatch):
    """A snippet with `experiments` is a whole configuration; otherwise it holds keys of one
    experiment, completed with a name and a problem."""
    monkeypatch.chdir(REPO)  # file problems are relative to the working directory
    loaded = yaml.safe_load(snippet)
    assert isinstance(loaded, dict), f"not a mapping: {snippet}"
    config = loaded if "experiments" in loaded else {"experiments": [{**SNIPPET_EXPERIMENT, **loaded}]}
    validate_config(config)
