"""Aggregation: the summary table from real stage files, correlations against scipy, the n >= 3
rule, missing and diverged runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from toposweep.aggregate import (
    RunSpec,
    correlations,
    is_log_spaced,
    main_test_metric,
    missing_runs,
    seed_statistics,
    summary_table,
    unfinished_runs,
)
from toposweep.io import read_landscape
from toposweep.topology import topology_metrics

from synthetic_runs import write_experiment


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    runs = write_experiment(results)
    return runs, summary_table(runs)


def hand_table(rows: list[dict]) -> pd.DataFrame:
    """A summary-shaped table (identity columns, then metrics) from hand-written rows."""
    frame = pd.DataFrame(rows)
    frame.insert(0, "experiment", "e")
    frame.insert(1, "point", [f"beta~{b}" for b in frame["beta"]])
    leading = ["experiment", "point", "beta", "seed", "status"]
    return frame[leading + [c for c in frame.columns if c not in leading]]


def test_summary_has_one_row_per_run_in_order_with_every_stage(experiment):
    runs, table = experiment
    assert [(row.point, row.seed) for row in table.itertuples()] == [(r.point, r.seed) for r in runs]
    assert list(table.columns[:4]) == ["experiment", "point", "beta", "seed"]
    assert list(table["status"]) == ["ok"] * 6 + ["diverged", "missing"]
    row = table.iloc[2]  # beta 2, seed 0
    assert row["test_relative_l2"] == pytest.approx(0.02)
    assert row["top_eigenvalue"] == 200.0 and row["eigenvalue_2"] == 20.0 and row["trace"] == 300.0
    loss = read_landscape(runs[2].directory / "landscape.h5").loss
    assert row["landscape_min"] == loss.min() and row["landscape_max"] == loss.max()
    assert row["landscape_centre"] == loss[5, 5] and row["landscape_n_nonfinite"] == 0
    for name, value in topology_metrics(loss).items():
        assert row[name] == pytest.approx(value), name


def test_a_diverged_run_stays_with_its_status_and_empty_metrics(experiment):
    _, table = experiment
    diverged = table.iloc[6]
    assert diverged["status"] == "diverged" and diverged["train_status"] == "diverged"
    assert diverged["hessian_status"] == "skipped" and diverged["topology_status"] == "skipped"
    for column in ("test_relative_l2", "top_eigenvalue", "n_saddles", "landscape_min"):
        assert math.isnan(diverged[column]), column
    assert unfinished_runs(table) == ["pinn/beta~8/seed~0: diverged"]


def test_a_missing_run_is_reported_by_name(experiment, tmp_path):
    _, table = experiment
    assert missing_runs(table) == [
        "pinn/beta~8/seed~1: train_metrics.json hessian.json landscape.h5 topology.json"]
    runs = write_experiment(tmp_path)
    (runs[0].directory / "topology.json").unlink()
    partial = summary_table(runs)
    assert partial.iloc[0]["status"] == "missing" and partial.iloc[0]["topology_status"] == "missing"
    assert "pinn/beta~1/seed~0: topology.json" in missing_runs(partial)
    assert partial.iloc[0]["test_relative_l2"] == pytest.approx(0.01)  # what exists is kept


def test_run_spec_from_the_workflow_run_dict(tmp_path):
    run = RunSpec.from_dict({"experiment": "e", "point": "beta~1", "seed": 3, "swept": {"beta": 1},
                             "files": {"topology": str(tmp_path / "t.json")}})
    assert run.files == {"topology": tmp_path / "t.json"} and run.name == "e/beta~1/seed~3"
    with pytest.raises(ValueError, match=r"lacks the keys \['seed', 'files'\]"):
        RunSpec.from_dict({"experiment": "e", "point": "p", "swept": {}})


def brute_force_p(x, y) -> float:
    """Two-sided permutation p of the correlation of x and y over all n! pairings, enumerated
    directly: 2 * min(P(r' >= r), P(r' <= r)), capped at 1 (scipy's two-sided convention)."""
    import itertools

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    observed = np.corrcoef(x, y)[0, 1]
    values = np.array([np.corrcoef(x, y[list(p)])[0, 1] for p in itertools.permutations(range(len(y)))])
    tolerance = 1e-12
    greater = np.mean(values >= observed - tolerance)
    less = np.mean(values <= observed + tolerance)
    return min(1.0, 2 * min(greater, less))


@pytest.mark.parametrize("x, y, expected", [
    ([1, 2, 3], [10, 20, 30], 1 / 3),  # rho = 1 at n = 3: 2 of 3! pairings are as extreme
    ([1, 2, 3, 4], [4, 3, 2, 1], 1 / 12),  # rho = -1 at n = 4: 2 / 4!
    ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], 1 / 60),  # 2 / 5!
    # rho = 0.8 at n = 5: sum d^2 = 4; 8 of 120 rankings have sum d^2 <= 4 (the identity, 4
    # adjacent swaps, 3 pairs of disjoint adjacent swaps), so p = 2 * 8 / 120
    ([1, 2, 3, 4, 5], [1, 3, 2, 5, 4], 2 * 8 / 120),
])
def test_small_n_spearman_p_values_are_exact(x, y, expected):
    from toposweep.statistics import correlation_test

    row = correlation_test(np.array(x, dtype=float), np.array(y, dtype=float))
    assert row["p_method"] == "exact permutation"
    assert row["spearman_p"] == pytest.approx(expected, abs=1e-12)
    assert row["spearman_p"] == pytest.approx(brute_force_p(stats.rankdata(x), stats.rankdata(y)))
    assert row["pearson_p"] == pytest.approx(brute_force_p(x, y), abs=1e-12)
    assert stats.spearmanr(x, y).pvalue < row["spearman_p"]  # scipy's asymptotic p: too small


def test_exact_p_equals_scipys_permutation_test_with_ties():
    from toposweep.statistics import exact_permutation_p

    x = np.array([0.3, 1.2, 1.2, 2.0, 2.5, 3.1, 4.0])
    y = np.array([1.0, 0.0, 2.0, 2.0, 3.0, 2.0, 5.0])  # ties in both columns

    def pearson(values, axis=-1):
        values = np.atleast_2d(values)
        return np.array([stats.pearsonr(x, v).statistic for v in values]).reshape(values.shape[:-1])

    reference = stats.permutation_test((y,), pearson, permutation_type="pairings",
                                       n_resamples=np.inf, vectorized=True).pvalue
    assert exact_permutation_p(x, y) == pytest.approx(reference, abs=1e-12)


def test_large_n_keeps_the_asymptotic_p_and_the_interval_covers_rho():
    from toposweep.statistics import EXACT_MAX_N, correlation_test

    rng = np.random.default_rng(0)
    x = rng.normal(size=EXACT_MAX_N + 5)
    y = x + rng.normal(size=x.size)
    row = correlation_test(x, y)
    assert row["p_method"] == "asymptotic"
    assert row["spearman_p"] == pytest.approx(stats.spearmanr(x, y).pvalue)
    assert -1 <= row["spearman_low"] < row["spearman_rho"] < row["spearman_high"] <= 1


def test_benjamini_hochberg_q_values_mark_the_significant_pairs():
    from toposweep.statistics import benjamini_hochberg

    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    q = benjamini_hochberg(p)
    # 4 tests, sorted 0.01, 0.03, 0.04, 0.5: p * 4 / rank = 0.04, 0.06, 0.0533, 0.5, then the
    # running minimum from the top: 0.04, 0.0533, 0.0533, 0.5
    np.testing.assert_allclose(q[[0, 1, 2, 4]], [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert np.isnan(q[3])


def test_correlations_equal_scipy_on_a_hand_table():
    saddles = [1, 3, 2, 8, 5, 9]
    error = [0.1, 0.4, 0.2, 0.9, 0.3, 0.8]
    beta = [1, 1, 5, 5, 10, 10]
    table = hand_table([{"beta": b, "seed": i % 2, "status": "ok", "n_saddles": s,
                         "test_relative_l2": e} for i, (b, s, e) in enumerate(zip(beta, saddles, error))])
    result = correlations(table, ["n_saddles"], ["test_relative_l2"]).set_index("other")
    assert list(result.index) == ["test_relative_l2", "beta"]
    assert list(result["other_kind"]) == ["metric", "hyperparameter"]
    pearson, spearman = stats.pearsonr(saddles, error), stats.spearmanr(saddles, error)
    row = result.loc["test_relative_l2"]
    assert row["n"] == 6 and row["note"] == "" and row["p_method"] == "exact permutation"
    assert row["pearson_r"] == pytest.approx(pearson.statistic, abs=1e-12)
    assert row["pearson_p"] == pytest.approx(brute_force_p(saddles, error), abs=1e-12)
    assert row["spearman_rho"] == pytest.approx(spearman.statistic, abs=1e-12)
    assert row["spearman_p"] == pytest.approx(
        brute_force_p(stats.rankdata(saddles), stats.rankdata(error)), abs=1e-12)
    assert row["spearman_low"] <= row["spearman_rho"] <= row["spearman_high"]
    assert result.loc["beta", "spearman_rho"] == pytest.approx(stats.spearmanr(saddles, beta).statistic)


def test_loops_join_the_correlations_where_they_were_computed():
    rows = [{"beta": b, "seed": 0, "status": "ok", "n_saddles": s, "n_loops": l, "trace": t}
            for b, s, l, t in [(1, 1, 0, 1.0), (2, 3, 2, 2.0), (3, 2, 1, 4.0), (4, 5, 3, 3.0)]]
    result = correlations(hand_table(rows), ["n_saddles"], ["trace"])
    assert list(result["topology_metric"].unique()) == ["n_saddles", "n_loops"]
    row = result.set_index(["topology_metric", "other"]).loc[("n_loops", "trace")]
    assert row["spearman_rho"] == pytest.approx(stats.spearmanr([0, 2, 1, 3], [1, 2, 4, 3]).statistic)
    without = correlations(hand_table([{k: v for k, v in r.items() if k != "n_loops"} for r in rows]),
                           ["n_saddles"], ["trace"])
    assert list(without["topology_metric"].unique()) == ["n_saddles"]


def test_a_perfect_monotone_relation_has_spearman_one_and_pearson_below():
    x = np.arange(1, 8, dtype=float)
    table = hand_table([{"beta": b, "seed": 0, "status": "ok", "n_saddles": v, "trace": math.exp(v)}
                        for b, v in zip(x, x)])
    row = correlations(table, ["n_saddles"], ["trace"]).iloc[0]
    assert row["spearman_rho"] == pytest.approx(1.0)
    assert row["pearson_r"] < 0.95


def test_fewer_than_three_finished_runs_say_not_enough_runs():
    table = hand_table([
        {"beta": 1, "seed": 0, "status": "ok", "n_saddles": 1, "trace": 1.0},
        {"beta": 2, "seed": 0, "status": "ok", "n_saddles": 2, "trace": 3.0},
        {"beta": 3, "seed": 0, "status": "diverged", "n_saddles": np.nan, "trace": np.nan},
        {"beta": 4, "seed": 0, "status": "ok", "n_saddles": 4, "trace": np.nan},  # trace not finite
    ])
    result = correlations(table, ["n_saddles"], ["trace"])
    row = result.iloc[0]
    assert row["n"] == 2 and math.isnan(row["pearson_r"]) and math.isnan(row["spearman_rho"])
    assert row["note"] == "not enough runs: 2 finished with both values, need at least 3"
    beta_row = result.iloc[1]  # n_saddles against beta: three finished runs
    assert beta_row["n"] == 3 and beta_row["spearman_rho"] == pytest.approx(1.0)


def test_a_constant_metric_is_named_instead_of_a_nan_warning():
    table = hand_table([{"beta": b, "seed": 0, "status": "ok", "n_saddles": 0, "trace": b}
                        for b in (1, 2, 3)])
    row = correlations(table, ["n_saddles"], ["trace"]).iloc[0]
    assert math.isnan(row["pearson_r"]) and row["note"] == "n_saddles is constant over the 3 runs"


def test_unknown_metric_names_are_an_error_listing_them(experiment):
    _, table = experiment
    with pytest.raises(ValueError, match=r"metrics \['n_saddle'\] are not columns"):
        correlations(table, ["n_saddle"])
    with pytest.raises(ValueError, match="min_runs: 2 is less than the minimum of 3"):
        correlations(table, min_runs=2)


def test_default_correlations_of_the_experiment_use_its_finished_runs(experiment):
    _, table = experiment
    result = correlations(table)
    assert set(result["other"]) == {"test_relative_l2", "test_mean_abs_error", "final_train_loss",
                                    "top_eigenvalue", "trace", "beta"}
    assert (result["n"] == 6).all()
    row = result.set_index(["topology_metric", "other"]).loc[("avg_persistence", "beta")]
    done = table[table["status"] == "ok"]
    expected = stats.spearmanr(done["avg_persistence"], done["beta"]).statistic
    assert row["spearman_rho"] == pytest.approx(expected)
    assert main_test_metric(table, "test_relative_l2") == "test_relative_l2"
    assert main_test_metric(table) == "test_relative_l2"  # the first test metric of the table


def test_seed_statistics_are_mean_and_sd_over_finished_seeds(experiment):
    _, table = experiment
    statistics = seed_statistics(table, "beta", "top_eigenvalue").set_index("beta")
    assert list(statistics.index) == [1, 2, 4]  # beta 8 has no finished seed
    assert statistics.loc[2, "mean"] == pytest.approx(200.5)  # 200 + seed, seeds 0 and 1
    assert statistics.loc[2, "sd"] == pytest.approx(np.std([200, 201], ddof=1))
    assert (statistics["n"] == 2).all()


@pytest.mark.parametrize("values, expected", [
    ([0.2, 0.1, 0.05, 0.02, 0.01, 0.005], True),
    ([4, 8, 16, 32, 64], True),
    ([1, 5, 10, 20, 30], False),
    ([1, 2, 3, 4], False),
    ([0.001, 0.1], True),
    ([1, 2], False),
    ([0, 1, 10, 100], False),  # zero cannot go on a log axis
])
def test_log_spacing_is_detected(values, expected):
    assert is_log_spaced(values) is expected
