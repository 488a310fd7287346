"""Metric values and paired verdicts on small hand-built cases whose answers we know."""
from __future__ import annotations

import pytest

from studyabroadgpt.eval.bertscore import BERTScorer
from studyabroadgpt.eval.outputs import Answer
from studyabroadgpt.eval.score import score_answers
from studyabroadgpt.eval.textchecks import has_markdown, is_abstention, word_count


def test_markdown_detection():
    assert has_markdown("## Steps\nApply early.")
    assert has_markdown("You need:\n- a CAS\n- funds")
    assert has_markdown("1. Apply\n2. Pay")
    assert has_markdown("This is **important**.")
    assert has_markdown("| a | b |\n|---|---|")
    assert not has_markdown("Plain prose answer with a hyphen - inside and 3.5 GPA.")


def test_abstention_detection():
    assert is_abstention("I don't know the current fee.")
    assert is_abstention("I'm not sure about that; ask the embassy.")
    assert is_abstention("I cannot provide legal advice.")
    assert is_abstention("   ")
    assert not is_abstention("The fee is 490 GBP; check the official GOV.UK page as it changes.")
    assert word_count("one two  three\nfour") == 4


@pytest.fixture(scope="module")
def bert():
    return BERTScorer()


def test_bertscore_identity_and_ordering(bert):
    ref = "You must show proof of funds for nine months of living costs."
    same, close, far, empty = bert.f1(
        [ref, "You need to prove you have funds for nine months of living expenses.", "I like bananas.", ""],
        [ref] * 4)
    assert same == pytest.approx(1.0, abs=1e-5)
    assert 1.0 > close > far
    assert empty == 0.0


def _answers(system, responses, refs, truncated=None):
    return [Answer(id=str(i), prompt=f"question {i}", response=r, system=system, reference=ref,
                   truncated=None if truncated is None else truncated[i], new_tokens=len(r.split()))
            for i, (r, ref) in enumerate(zip(responses, refs))]


def test_reference_metrics_favour_the_copy_and_verdicts_follow_direction():
    refs = [f"Students in country {i} must hold {i + 2} months of funds and a valid offer letter." for i in range(12)]
    base = _answers("base", ["I don't know." for _ in refs], refs, truncated=[True] * 12)
    tuned = _answers("tuned", list(refs), refs, truncated=[False] * 12)
    result, items = score_answers({"base": base, "tuned": tuned}, n_resamples=300, use_audit=False)
    v = {c["metric"]: c for c in result["comparisons"]}
    for m in ("bleu", "rougeL_f1", "bertscore_f1"):
        assert v[m]["verdict"] == "better" and v[m]["diff"] > 0
    assert result["metrics"]["rougeL_f1"]["tuned"]["mean"] == pytest.approx(1.0)
    assert result["metrics"]["bleu"]["tuned"]["mean"] == pytest.approx(100.0)
    # fewer truncations is better even though the difference is negative
    assert v["truncation_rate"]["diff"] == pytest.approx(-1.0) and v["truncation_rate"]["verdict"] == "better"
    # descriptive metrics say higher/lower, not better/worse
    assert v["abstention_rate"]["verdict"] == "lower" and v["length_words"]["verdict"] == "higher"
    assert "audit_error_rate" in result["unavailable"] and "audit_error_rate" not in result["metrics"]
    assert len(items.rows()) == 24


def test_no_references_means_reference_metrics_unavailable_not_zero():
    base = _answers("base", ["a b c"] * 5, [None] * 5)
    tuned = _answers("tuned", ["a b c d e"] * 5, [None] * 5)
    result, _ = score_answers({"base": base, "tuned": tuned}, n_resamples=200, use_audit=False)
    for m in ("bleu", "rougeL_f1", "bertscore_f1"):
        assert m not in result["metrics"] and "no reference" in result["unavailable"][m]
    assert "truncation_rate" in result["unavailable"]
    assert result["lengths"]["tuned"]["mean_words"] == 5


def test_identical_systems_are_not_distinguishable():
    refs = [f"reference answer number {i} about visas" for i in range(10)]
    resp = [f"an answer {i} about visas and fees" for i in range(10)]
    result, _ = score_answers({"base": _answers("base", resp, refs), "tuned": _answers("tuned", resp, refs)},
                              n_resamples=200, use_audit=False)
    assert {c["verdict"] for c in result["comparisons"]} == {"not distinguishable"}


def test_audit_metrics_when_the_kb_audit_is_present():
    audit = pytest.importorskip("studyabroadgpt.kb.audit")
    prompts = ["What are the work rights on a UK student visa?", "How much money do I need for a Canadian study permit?"]
    answers = {}
    for system, suffix in (("base", " Check the official government website, rules change."), ("tuned", "")):
        answers[system] = [Answer(id=str(i), prompt=p, response="You can work 20 hours a week." + suffix,
                                  system=system) for i, p in enumerate(prompts)]
    result, items = score_answers(answers, n_resamples=200)
    if any(audit.is_policy_sensitive(p) for p in prompts):
        caveat = result["metrics"]["caveat_rate_policy"]
        assert caveat["base"]["mean"] >= caveat["tuned"]["mean"]
    assert "audit_error_rate" in result["metrics"]
    assert all("audit" in row for row in items.rows())


def test_baseline_must_exist():
    from studyabroadgpt.data.io import DataError

    a = _answers("base", ["x"], ["y"])
    with pytest.raises(DataError, match="baseline system 'nope'"):
        score_answers({"base": a, "tuned": _answers("tuned", ["x"], ["y"])}, baseline="nope", use_audit=False)
