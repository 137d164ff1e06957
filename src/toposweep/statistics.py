"""Correlation tests that stay honest at the few runs a sweep has.

A sweep correlates a topology metric with an ML metric over 3 to 30 runs. scipy's `spearmanr`
p-value is asymptotic: with rho = 1 at n = 3 it says p = 0, where the exact permutation p is 1/3.
So for n <= EXACT_MAX_N every pairing of the two columns is enumerated (n! of them, the exact
permutation test of `scipy.stats.permutation_test`, computed faster); above that the asymptotic p-values are kept (they are good
there). Spearman's rho gets a percentile bootstrap interval, and the p-values of one table get
Benjamini-Hochberg adjusted q-values, since a table tests dozens of pairs at once.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from typing import Any

import numpy as np

EXACT_MAX_N = 10  # 10! = 3,628,800 pairings: about 0.3 s per p-value
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # on the Benjamini-Hochberg q-value


@functools.lru_cache(maxsize=2)
def all_pairings(n: int) -> np.ndarray:
    """Every permutation of range(n), (n!, n) int8: 10! x 10 is 36 MB, made once per process."""
    flat = itertools.chain.from_iterable(itertools.permutations(range(n)))
    return np.fromiter(flat, dtype=np.int8, count=math.factorial(n) * n).reshape(-1, n)


def exact_permutation_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided exact permutation p-value of the correlation of x and y over all n! pairings,
    2 min(P(r' >= r), P(r' <= r)) capped at 1 (scipy.stats.permutation_test's convention; it
    agrees with it, tested, and is ~20x faster at n = 10 because permuting y changes neither its
    mean nor its norm, so one matrix-vector product per block of pairings remains)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x_centred, y_centred = x - x.mean(), y - y.mean()
    norm = math.sqrt(float(np.sum(x_centred**2) * np.sum(y_centred**2)))
    observed = float(x_centred @ y_centred) / norm
    tolerance = 1e-12 * max(1.0, abs(observed))  # ties with the observed value count as extreme
    greater = less = 0
    pairings = all_pairings(len(x))
    for begin in range(0, len(pairings), 500_000):
        values = y_centred[pairings[begin : begin + 500_000]] @ x_centred / norm
        greater += int(np.count_nonzero(values >= observed - tolerance))
        less += int(np.count_nonzero(values <= observed + tolerance))
    return min(1.0, 2 * min(greater, less) / len(pairings))


def spearman_interval(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (CONFIDENCE) of Spearman's rho, resampling runs in pairs.
    Resamples in which a column is constant have no rho and are left out (with 3 runs, 1 in 3 is
    such); NaN when fewer than half of the resamples remain."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    n = len(x)
    index = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    rx = stats.rankdata(np.asarray(x, dtype=float)[index], axis=1)
    ry = stats.rankdata(np.asarray(y, dtype=float)[index], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.sum(rx * ry, axis=1) / np.sqrt(np.sum(rx**2, axis=1) * np.sum(ry**2, axis=1))
    rho = rho[np.isfinite(rho)]
    if rho.size < BOOTSTRAP_RESAMPLES / 2:
        return math.nan, math.nan
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(rho, [tail, 100 - tail])
    return float(low), float(high)


def correlation_test(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Pearson r and Spearman rho of two finite, non-constant columns, with p-values (exact
    permutation for n <= EXACT_MAX_N, else scipy's asymptotic ones; `p_method` says which) and
    the bootstrap interval of rho."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-constant inputs: scipy warns, the result stands
        pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    row = {"pearson_r": float(pearson.statistic), "spearman_rho": float(spearman.statistic)}
    if len(x) <= EXACT_MAX_N:
        row["pearson_p"] = exact_permutation_p(x, y)
        row["spearman_p"] = exact_permutation_p(stats.rankdata(x), stats.rankdata(y))
        row["p_method"] = "exact permutation"
    else:
        row["pearson_p"], row["spearman_p"] = float(pearson.pvalue), float(spearman.pvalue)
        row["p_method"] = "asymptotic"
    row["spearman_low"], row["spearman_high"] = spearman_interval(x, y)
    return row


def benjamini_hochberg(p_values: Any) -> np.ndarray:
    """q-values (scipy.stats.false_discovery_control, method "bh") of the finite p-values;
    NaN stays NaN and does not count as a test."""
    from scipy import stats

    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = stats.false_discovery_control(p[finite], method="bh")
    return q
