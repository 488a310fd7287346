"""The statistics behind every verdict, checked against published values and a coverage simulation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from studyabroadgpt import significance as stats

from studyabroadgpt.eval.metrics import corpus_bleu


@pytest.mark.parametrize("successes,n,low,high", [
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score interval)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_1998(successes, n, low, high):
    lo, hi = stats.wilson_interval(successes, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_bowker_on_2x2_is_mcnemar_agresti_presidential_approval():
    # Agresti, Categorical Data Analysis (2nd ed.), Table 10.1: McNemar z = 4.17, z^2 = 17.36
    res = stats.bowker_test(np.array([[794, 150], [86, 570]]))
    assert res["chi2"] == pytest.approx(17.36, abs=0.005)
    assert res["df"] == 1
    assert res["p_value"] < 1e-4


def test_bowker_3x3_hand_computed():
    # pairs (10,2), (5,1), (3,3): 64/12 + 16/6 + 0 = 8.0 on 3 df; the diagonal never counts
    table = np.array([[40, 10, 5], [2, 7, 3], [1, 3, 99]])
    res = stats.bowker_test(table)
    assert res["chi2"] == pytest.approx(8.0)
    assert res["df"] == 3
    assert res["p_value"] == pytest.approx(sps.chi2.sf(8.0, 3))
    # the paper's reported chi2(2) = 9.3 corresponds to p = 0.0095
    assert sps.chi2.sf(9.3, 2) == pytest.approx(0.0095, abs=1e-4)


def test_bootstrap_mean_ci_coverage_on_synthetic_normal():
    """A nominal 95% percentile-bootstrap CI should contain the true mean about 95% of the time."""
    rng = np.random.default_rng(123)
    hits = 0
    reps = 300
    for r in range(reps):
        sample = rng.normal(loc=1.0, scale=2.0, size=60)
        _, lo, hi = stats.bootstrap_mean_ci(sample, n_resamples=1000, seed=r)
        hits += lo <= 1.0 <= hi
    coverage = hits / reps
    assert 0.90 <= coverage <= 0.985, coverage


def test_paired_bootstrap_detects_a_real_shift_and_not_a_null_one():
    rng = np.random.default_rng(7)
    a = rng.normal(size=80)
    shifted = stats.paired_bootstrap_diff(a, a + 0.5 + rng.normal(scale=0.2, size=80))
    assert shifted["verdict"] == "better" and shifted["ci_low"] > 0
    null = stats.paired_bootstrap_diff(a, a + rng.normal(scale=0.2, size=80))
    assert null["verdict"] == "not distinguishable" and null["ci_low"] < 0 < null["ci_high"]


def test_statistic_bootstrap_equals_mean_bootstrap_for_the_mean():
    v = np.random.default_rng(1).normal(size=30)
    assert stats.bootstrap_statistic_ci(lambda idx: float(v[idx].mean()), len(v)) == \
        pytest.approx(stats.bootstrap_mean_ci(v))


def test_corpus_bleu_from_item_statistics_matches_sacrebleu():
    from sacrebleu.metrics import BLEU

    hyps = ["the cat sat on the mat", "hello there general kenobi", "visa rules change often"]
    refs = ["the cat sat on a mat", "hello there", "visa rules change, check the official source"]
    bleu = BLEU()
    st = np.asarray(bleu._extract_corpus_statistics(hyps, [refs]), dtype=float)
    assert corpus_bleu(st) == pytest.approx(BLEU().corpus_score(hyps, [refs]).score)
    assert corpus_bleu(st, np.array([0, 0, 1])) == pytest.approx(
        BLEU().corpus_score([hyps[0], hyps[0], hyps[1]], [[refs[0], refs[0], refs[1]]]).score)


def test_sign_test_exact_binomial():
    res = stats.sign_test([0] * 10, [1] * 9 + [-1])
    assert res["b_higher"] == 9 and res["a_higher"] == 1
    assert res["p_value"] == pytest.approx(22 / 1024)


def test_wilson_bounds_are_exact_at_zero_and_n():
    assert stats.wilson_interval(0, 3)[0] == 0.0
    assert stats.wilson_interval(3, 3)[1] == 1.0
