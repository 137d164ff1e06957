"""The report's words: the landing page (runs in numeric order with their numbers, headline
correlations with n, interval, p and q) and each run's numbers, from real stage files."""

from __future__ import annotations

import math

import docutils.core
import pandas as pd
import pytest

from toposweep.aggregate import correlations, problem_labels, summary_table
from toposweep.io import read_json
from toposweep.problems import get_problem
from toposweep.report import (headline_correlations, number_text, overview_rst, run_numbers,
                              sorted_runs)

from synthetic_runs import RUN_FILES, write_experiment, write_run

PINN = get_problem("pinn_convection").describe()


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The synthetic PINN-like experiment (β 1, 2, 4 × 2 seeds, a diverged and a missing run,
    plus β = 10 and 20 so that text order and numeric order differ) and its two tables."""
    results = tmp_path_factory.mktemp("results")
    runs = write_experiment(results)
    runs += [write_run(results, "pinn", beta, 0, 4) for beta in (10, 20)]
    table = summary_table(runs)
    summary, correlated = results / "summary.csv", results / "correlations.csv"
    table.to_csv(summary, index=False)
    correlations(table).to_csv(correlated, index=False)
    return results, summary, correlated


def test_numbers_are_three_significant_digits_and_missing_ones_a_dash():
    assert [number_text(v) for v in (0.012345, 12345.6, 3.0, None, math.nan, math.inf, "")] \
        == ["0.0123", "1.23e+04", "3", "–", "–", "inf", "–"]


def test_runs_are_in_numeric_order(tables):
    _, summary, _ = tables
    ordered = sorted_runs(pd.read_csv(summary))
    assert list(ordered["beta"]) == [1, 1, 2, 2, 4, 4, 8, 8, 10, 20]
    assert list(ordered["seed"][:2]) == [0, 1]


def test_headline_correlations_put_the_smallest_q_first(tables):
    _, _, correlated = tables
    table = pd.read_csv(correlated)
    top = headline_correlations(table, count=3)
    assert len(top) == 3
    assert top["spearman_q"].is_monotonic_increasing
    assert top["spearman_q"].iloc[0] == table["spearman_q"].min()


def test_the_landing_page_shows_each_run_and_the_strongest_correlations(tables):
    _, summary, correlated = tables
    page = overview_rst([{"experiment": "pinn", "landscape": "random2d",
                          "swept": "pinn_convection, beta ∈ {1, 2, 4, 8, 10, 20}",
                          "problem": PINN, "summary": str(summary),
                          "correlations": str(correlated)}])
    assert page.startswith("{% raw %}") and page.rstrip().endswith("{% endraw %}")
    html = docutils.core.publish_parts(page.split("\n", 1)[1].rsplit("{% endraw %}", 1)[0],
                                       writer="html")["html_body"]
    # runs in numeric order, one column per swept setting (β) and the seed
    first_cells = [line.split("</td>")[0][len("<tr><td>"):] for line in html.splitlines()
                   if line.startswith("<tr><td>")]
    assert first_cells[:2] == ["summary", "correlations"]  # the table of the two files
    assert first_cells[2:12] == \
        ["1", "1", "2", "2", "4", "4", "8", "8", "10", "20"]
    assert "<th class=\"head\">β</th>" in html and "<th class=\"head\">seed</th>" in html
    assert "test relative L2 error" in html and "8 of 10 runs finished every stage" in html
    assert "diverged" in html and "missing" in html
    # the strongest correlation, as the table has it
    table = pd.read_csv(correlated)
    tested = table.dropna(subset=["spearman_rho"])
    assert f"{int(tested['significant'].sum())} of {len(tested)} Spearman tests" in html
    best = headline_correlations(table, count=1).iloc[0]
    assert f"{best.spearman_rho:+.2f} [" in html and "exact permutation" in html


def test_a_runs_numbers_come_from_its_stage_files(tmp_path):
    run = write_run(tmp_path, "pinn", 4, 1, 3)
    files = {key: run.directory / name for key, name in RUN_FILES.items()}
    with problem_labels(PINN):
        numbers = run_numbers(files, PINN)
    tree = read_json(files["topology"])["metrics"]
    assert numbers == {"test relative L2 error": "0.041", "λ₁": "401",
                       "minima": str(tree["n_minima"]), "saddles": str(tree["n_saddles"]),
                       "average persistence": f"{tree['avg_persistence']:.3g}"}
    assert tree["n_minima"] >= 3


def test_a_diverged_runs_numbers_say_why(tmp_path):
    run = write_run(tmp_path, "pinn", 8, 0, 4, status="diverged")
    files = {key: run.directory / name for key, name in RUN_FILES.items()}
    numbers = run_numbers(files, PINN)
    assert numbers["training"] == "diverged" and numbers["λ₁"] == "skipped"
    assert numbers["minima"] == "skipped"
    assert run_numbers({}, PINN)["λ₁"] == "missing"
