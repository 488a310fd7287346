"""Significance: confidence intervals and paired tests shared by the audit, evaluation and judge.

Kept in one place so that every number we report to a user comes with the same, documented interval.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from scipy import stats as sps


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (well-behaved at 0, 1 and small n, unlike the normal one)."""
    if n <= 0:
        return (0.0, 1.0)
    z = sps.norm.ppf(1 - (1 - confidence) / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 or n successes the bound is exactly 0 or 1; floating point would otherwise give e.g. 5.6e-17.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def bootstrap_mean_ci(values: Sequence[float], n_resamples: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile bootstrap CI of the mean of ``values``."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_resamples, arr.size))
    means = arr[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    return (float(arr.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def paired_bootstrap_diff(a: Sequence[float], b: Sequence[float], n_resamples: int = 1000, seed: int = 0,
                          confidence: float = 0.95) -> dict:
    """Paired bootstrap of mean(b - a): same items resampled for both systems.

    Returns the observed difference, its CI and a verdict: ``better`` / ``worse`` (b vs a) when the CI excludes
    zero, otherwise ``not distinguishable``.
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired bootstrap needs equal lengths, got {a_arr.size} and {b_arr.size}")
    diff, lo, hi = bootstrap_mean_ci(b_arr - a_arr, n_resamples=n_resamples, seed=seed, confidence=confidence)
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"
    return {"diff": diff, "ci_low": lo, "ci_high": hi, "verdict": verdict, "n": int(a_arr.size)}


def sign_test(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided exact sign test on paired scores (ties dropped)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    n = pos + neg
    p = float(sps.binomtest(pos, n, 0.5).pvalue) if n else 1.0
    return {"b_higher": pos, "a_higher": neg, "ties": int((d == 0).sum()), "p_value": p}


def bowker_test(table: np.ndarray) -> dict:
    """McNemar–Bowker test of symmetry for a k×k paired table (k=3 for A/B/tie preferences)."""
    t = np.asarray(table, dtype=float)
    k = t.shape[0]
    chi2, df = 0.0, 0
    for i in range(k):
        for j in range(i + 1, k):
            s = t[i, j] + t[j, i]
            if s > 0:
                chi2 += (t[i, j] - t[j, i]) ** 2 / s
                df += 1
    p = float(sps.chi2.sf(chi2, df)) if df else 1.0
    return {"chi2": float(chi2), "df": df, "p_value": p}


def bootstrap_statistic_ci(statistic: Callable[[np.ndarray], float], n: int, n_resamples: int = 1000,
                           seed: int = 0, confidence: float = 0.95) -> tuple[float, float, float]:
    """Percentile bootstrap CI of a statistic that is not a mean of per-item values (e.g. corpus BLEU).

    ``statistic(idx)`` computes the value on the items ``idx`` (a resample with replacement of ``range(n)``).
    """
    if n <= 0:
        return (float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(n_resamples)])
    alpha = (1 - confidence) / 2
    return (float(statistic(np.arange(n))), float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)))


def paired_bootstrap_statistic(stat_a: Callable[[np.ndarray], float], stat_b: Callable[[np.ndarray], float],
                               n: int, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Paired bootstrap of ``stat_b - stat_a`` for corpus-level statistics: both see the same resampled items.

    Same result shape and verdict rule as :func:`paired_bootstrap_diff`.
    """
    diff, lo, hi = bootstrap_statistic_ci(lambda idx: stat_b(idx) - stat_a(idx), n, n_resamples=n_resamples,
                                          seed=seed, confidence=confidence)
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"
    return {"diff": diff, "ci_low": lo, "ci_high": hi, "verdict": verdict, "n": int(n)}
