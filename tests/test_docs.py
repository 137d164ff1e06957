"""The docs run as written: every Python block of README.md and docs/*.md runs (each file's blocks
in order, in one namespace, in a scratch folder), and every `snakemake` line of their shell blocks
parses as Snakemake parses it and builds its DAG (`-n`; the paper configs' DAGs in
test_workflow.py). A line that only works on a cluster would end with `# cluster only`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

VENV_BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SLOW_DOCS = {"figures.md"}  # its block runs a tiny sweep through every stage (about 30 s)
CLUSTER_ONLY = "# cluster only"


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def snakemake_lines() -> list[tuple[str, str]]:
    """(file, command) of every snakemake line of the docs' bash blocks, comments dropped."""
    found = []
    for path in DOCS + [REPO / "examples" / "minilm" / "README.md"]:
        for block in blocks(path, "bash"):
            for line in block.splitlines():
                if line.startswith("snakemake") and CLUSTER_ONLY not in line:
                    found.append((path.name, line.split("#", 1)[0].strip()))
    return found


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=[pytest.mark.slow]
                                               if p.name in SLOW_DOCS else [])
                                  for p in DOCS if blocks(p, "python")])
def test_python_blocks_run_as_written(path, tmp_path):
    code = "\n".join(blocks(path, "python"))
    environment = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]


def test_snakemake_lines_parse_and_build_their_dag():
    """Each line through Snakemake's own argument parser: its config files exist (a target after
    --configfile would be taken for one) and its targets are rules or files. Lines that name files
    or a config outside config/paper/ also build their DAG (-n, from the repository root as the docs
    say; a dry run writes no results); the
    paper configs' DAGs are built by test_workflow.py::test_paper_configs_dry_run."""
    from snakemake.cli import get_argument_parser

    from toposweep.figures.registry import FIGURES

    rules = set(re.findall(r"^(?:local)?rule (\w+):",
                           "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk")),
                           flags=re.M)) | {"all"} | {entry.rule for entry in FIGURES}  # rules of a loop
    lines = snakemake_lines()
    assert len(lines) >= 15, "the docs' snakemake lines were not found"
    dry_runs = {}
    for name, line in lines:
        arguments = shlex.split(line)[1:]
        parsed = get_argument_parser().parse_args(arguments)
        for configfile in parsed.configfile or []:
            assert (REPO / configfile).is_file() and configfile.suffix == ".yaml", (name, line)
        files = [target for target in parsed.targets if target not in rules]
        assert all("/" in target for target in files), (name, line, "unknown target")
        outside = [c for c in parsed.configfile or [] if c.parts[:2] != ("config", "paper")]
        if files or outside:  # one dry run per set of options, with all their lines' targets
            options = [a for a in arguments if a not in parsed.targets]
            if "--report" in options:
                index = options.index("--report")
                options = options[:index] + options[index + 2:]
            dry_runs.setdefault(tuple(options), set()).update(parsed.targets)
    environment = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    for options, targets in dry_runs.items():
        command = [str(VENV_BIN / "snakemake"), *sorted(targets), *options, "-n", "--quiet"]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                                env=environment)
        assert result.returncode == 0, (command, result.stderr[-2000:])
