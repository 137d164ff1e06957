"""What the HTML report says in words: its landing page (what was swept, each landscape's summary
table and headline correlations, in reStructuredText for Snakemake's `report:` directive) and
each run's numbers (the labels and caption of its panel). Reads the aggregate tables and the
stage files; nothing here imports Snakemake.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .aggregate import main_test_metric, metric_label, problem_labels, short_label, swept_parameters
from .io import read_json
from .statistics import SIGNIFICANCE

HEADLINE_CORRELATIONS = 5  # per landscape, the strongest by q-value then |ρ|
# The summary table's columns beside the test metric, with headers short enough for the page.
SUMMARY_COLUMNS = {"top_eigenvalue": "λ₁", "trace": "trace", "n_minima": "minima",
                   "n_saddles": "saddles", "avg_persistence": "avg. persistence"}


def number_text(value: Any) -> str:
    """A table cell: three significant digits, '–' for a missing number, 'nan'/'inf' kept
    (non-finite values are reported, never hidden)."""
    if value is None or (isinstance(value, str) and not value):
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def sorted_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The runs of a summary in numeric order (β 1, 5, 10, 20 rather than text order): by the
    swept settings, then the seed."""
    keys = [column for column in [*swept_parameters(table), "seed"] if column in table.columns]
    return table.sort_values(keys, kind="stable") if keys else table


def _rst_table(header: Sequence[str], rows: Iterable[Sequence[str]], widths: str = "auto") -> str:
    """An rst list-table (cells with '|' or newlines would break it: none of ours have them)."""
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for cells in [header, *rows]:
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {cell}" for cell in cells[1:])
    return "\n".join(lines) + "\n"


def summary_section(table: pd.DataFrame, test_metric: str | None) -> str:
    """Every run of one landscape, in numeric order, one column per swept setting and the
    seed (short, so that a row stays one line): status, test metric, λ₁, trace, counts,
    persistence and warnings."""
    parameters = swept_parameters(table)
    columns = [c for c in (test_metric, *SUMMARY_COLUMNS) if c and c in table.columns]
    header = [*(short_label(name) for name in parameters), "seed", "status",
              *(SUMMARY_COLUMNS.get(c) or metric_label(c) for c in columns), "warnings"]
    rows = [
        [*(number_text(row[name]) for name in parameters), str(row["seed"]), str(row["status"]),
         *(number_text(row[c]) for c in columns), number_text(row.get("warnings", ""))]
        for _, row in sorted_runs(table).iterrows()
    ]
    return _rst_table(header, rows)


def headline_correlations(correlations: pd.DataFrame, count: int = HEADLINE_CORRELATIONS
                          ) -> pd.DataFrame:
    """The strongest Spearman correlations of a landscape: smallest q-value first, then the
    largest |ρ|; pairs without a coefficient (too few runs, a constant metric) are left out."""
    tested = correlations.dropna(subset=["spearman_rho"])
    order = tested.assign(strength=-tested["spearman_rho"].abs())
    return order.sort_values(["spearman_q", "strength"], kind="stable").head(count)


def correlation_section(correlations: pd.DataFrame) -> str:
    """Headline correlations with n, ρ, its bootstrap interval, the p-value and its method,
    and the Benjamini-Hochberg q-value over all of the landscape's tests."""
    tested = correlations.dropna(subset=["spearman_rho"])
    if tested.empty:
        notes = sorted(set(correlations["note"].dropna())) if "note" in correlations else []
        reason = notes[0] if notes else "no finished runs to correlate"
        return f"No correlation could be computed: {reason}.\n"
    significant = int(tested["significant"].fillna(False).astype(bool).sum())
    lines = [
        f"{significant} of {len(tested)} Spearman tests are significant at q < {SIGNIFICANCE} "
        "(Benjamini–Hochberg over this landscape's tests; exact permutation p-values up to "
        "10 runs). The strongest:", "",
    ]
    rows = [
        [metric_label(row.topology_metric), metric_label(row.other), str(int(row.n)),
         f"{row.spearman_rho:+.2f} [{number_text(row.spearman_low)}, "
         f"{number_text(row.spearman_high)}]",
         f"{number_text(row.spearman_p)} ({row.p_method})", number_text(row.spearman_q),
         "yes" if bool(row.significant) else "no"]
        for row in headline_correlations(correlations).itertuples()
    ]
    header = ["topology metric", "against", "n", "ρ [95 % bootstrap]", "p", "q", "q < 0.05"]
    return "\n".join(lines) + "\n" + _rst_table(header, rows)


def overview_rst(sections: Sequence[Mapping[str, Any]]) -> str:
    """The report's landing page. Each section: experiment, landscape, swept (in words),
    problem (`Problem.describe()`), summary (summary.csv path), correlations (correlations.csv
    path). The text is wrapped in Jinja's raw block: Snakemake renders the page as a template."""
    parts = ["toposweep sweep", "===============", "",
             "What was swept, every run's numbers and the strongest correlations, per experiment "
             "and landscape. The figures are under the experiment's entry in the menu; the "
             "tables are the ``summary.csv`` and ``correlations.csv`` files named below.", ""]
    for section in sections:
        with problem_labels(section.get("problem")):
            parts.append(_section_rst(section))
    return "{% raw %}\n" + "\n".join(parts) + "\n{% endraw %}\n"


def _section_rst(section: Mapping[str, Any]) -> str:
    table = pd.read_csv(section["summary"])
    correlations = pd.read_csv(section["correlations"])
    declared = (section.get("problem") or {}).get("test_metric")
    finished = int((table["status"] == "ok").sum())
    title = f"{section['experiment']}: landscape {section['landscape']}"
    return "\n".join([
        title, "-" * len(title), "",
        f"Swept: {section['swept']}. {finished} of {len(table)} runs finished every stage.", "",
        _rst_table(["file", "path"], [["summary", f"``{section['summary']}``"],
                                      ["correlations", f"``{section['correlations']}``"]]),
        "Runs", "~~~~", "",
        summary_section(table, main_test_metric(table, declared)),
        "Correlations", "~~~~~~~~~~~~", "",
        correlation_section(correlations),
    ])


def run_numbers(files: Mapping[str, str | Path], problem: Mapping[str, Any] | None = None
                ) -> dict[str, str]:
    """A run's headline numbers, as text, from its stage files (train_metrics, hessian,
    topology; a missing or unfinished stage gives its status instead): the main test metric,
    λ₁, the numbers of minima and saddles and the average persistence."""
    numbers: dict[str, str] = {}
    with problem_labels(problem):
        train = _stage(files.get("train_metrics"))
        declared = (problem or {}).get("test_metric")
        tests = [name for name in train if name.startswith("test_")]
        test_metric = declared if declared in train else (tests[0] if tests else None)
        if test_metric:
            numbers[metric_label(test_metric)] = number_text(train[test_metric])
        elif train["status"] != "ok":
            numbers["training"] = train["status"]
        hessian = _stage(files.get("hessian"))
        numbers["λ₁"] = (number_text(hessian["top_eigenvalue"]) if "top_eigenvalue" in hessian
                         else hessian["status"])
        topology = _stage(files.get("topology"))
        tree = topology.get("metrics") or {}
        for name, label in (("n_minima", "minima"), ("n_saddles", "saddles"),
                            ("avg_persistence", "average persistence")):
            numbers[label] = number_text(tree[name]) if name in tree else topology["status"]
    return numbers


def _stage(path: str | Path | None) -> dict[str, Any]:
    """A stage file's content, or {'status': why not}; the report never fails on a run."""
    if path is None or not Path(path).exists():
        return {"status": "missing"}
    content = read_json(path)
    content.setdefault("status", "ok")
    return content if content["status"] == "ok" else {"status": content["status"]}
