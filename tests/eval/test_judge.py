"""Blind pairwise judge against a real local HTTP server; de-blinded statistics on known tables."""
from __future__ import annotations

import json

import pytest

from studyabroadgpt.config import ConfigError
from studyabroadgpt.eval.judge import (EndpointJudge, KeyEntry, deblind, judge_tasks, make_tasks, parse_judgement,
                                       run_judge)
from studyabroadgpt.eval.outputs import Answer

CAVEAT = "You can work 20 hours a week in term time; check the official GOV.UK page before you rely on it."
NO_CAVEAT = "You can work 20 hours a week."


def _pair(questions, base_text, tuned_text):
    base = [Answer(id=str(i), prompt=q, response=base_text, system="base") for i, q in enumerate(questions)]
    tuned = [Answer(id=str(i), prompt=q, response=tuned_text, system="tuned") for i, q in enumerate(questions)]
    return {"base": base, "tuned": tuned}


def test_parse_judgement_is_robust():
    fenced = 'Verdict:\n```json\n{"accuracy_a": "2", "helpfulness_a": 3.0, "accuracy_b": 1, ' \
             '"helpfulness_b": "0/3", "preference": "Answer B"}\n```'
    j = parse_judgement(fenced)
    assert (j.accuracy_a, j.helpfulness_a, j.helpfulness_b, j.preference) == (2, 3, 0, "B")
    assert parse_judgement('{"x": 1} {"Accuracy A": 1, "helpfulness_a": 1, "accuracy_b": 1, "helpfulness_b": 1, '
                           '"preference": "Tie"}').preference == "tie"
    assert parse_judgement("no json at all") is None
    assert parse_judgement('{"accuracy_a": 7, "helpfulness_a": 1, "accuracy_b": 1, "helpfulness_b": 1, '
                           '"preference": "A"}') is None  # out of range is not silently clipped
    assert parse_judgement("") is None


def test_blinding_order_is_seeded_random_and_the_key_stays_apart():
    answers = _pair([f"q{i}" for i in range(40)], "base answer", "tuned answer")
    tasks, keys = make_tasks(answers, "base", "tuned", both_orders=True, seed=3)
    assert len(tasks) == 80
    first_pass_a = [k.a for k in keys if k.pass_ == 1]
    assert 8 < first_pass_a.count("base") < 32  # both orders occur
    for t, k in zip(tasks, keys):
        assert "base" not in vars(t).values() and "tuned" not in vars(t).values()  # no system name in the task
        assert t.answer_a == f"{k.a} answer"
    again, _ = make_tasks(answers, "base", "tuned", both_orders=True, seed=3)
    assert [t.answer_a for t in again] == [t.answer_a for t in tasks]
    pairs = {}
    for k in keys:
        pairs.setdefault(k.id, []).append(k.a)
    assert all(set(v) == {"base", "tuned"} for v in pairs.values())  # second pass swaps


def test_live_judge_prefers_the_caveated_answer(judge_url, tmp_path):
    questions = [f"Can I work on a student visa in city {i}?" for i in range(12)]
    answers = _pair(questions, CAVEAT, NO_CAVEAT)
    res = run_judge(answers, "base", "tuned", EndpointJudge(judge_url), tmp_path, both_orders=True, seed=0,
                    show_progress=False)
    assert res["counts"] == {"win": 0, "tie": 0, "loss": 12}
    assert res["rates"]["loss"]["ci_low"] > 0.7
    assert res["sign_tests"]["accuracy"]["a_higher"] == 12 and res["sign_tests"]["accuracy"]["p_value"] < 0.001
    # rows: pass with base shown as A; base won both passes → all mass in cell (A, B)
    assert res["bowker"]["table"] == [[0, 12, 0], [0, 0, 0], [0, 0, 0]]
    assert res["bowker"]["df"] == 1 and res["bowker"]["p_value"] < 0.001
    assert res["position_bias"]["consistency"] == 1.0 and res["position_bias"]["share_A"] == 0.5
    # files: blind judgements carry no system names; the key is separate
    blind = (tmp_path / "judgements.jsonl").read_text()
    assert "base" not in blind and "tuned" not in blind
    key = [json.loads(x) for x in (tmp_path / "judge_key.jsonl").read_text().splitlines()]
    assert len(key) == 24 and {k["a"] for k in key} == {"base", "tuned"}
    assert json.loads((tmp_path / "judge.json").read_text())["judge"].startswith("default@")


def test_unparseable_is_recorded_after_one_retry_and_never_crashes(judge_url, tmp_path):
    questions = ["GARBAGE visa question", "RETRY visa question", "FENCE visa question", "plain visa question"]
    answers = _pair(questions, CAVEAT, NO_CAVEAT)
    tasks, keys = make_tasks(answers, "base", "tuned", both_orders=False, seed=1)
    judgements = judge_tasks(tasks, EndpointJudge(judge_url))
    by_id = {j["id"]: j for j in judgements}
    assert by_id["0"]["parsed"] is None and by_id["0"]["attempts"] == 2 and by_id["0"]["error"] == "unparseable"
    assert by_id["1"]["parsed"] is not None and by_id["1"]["attempts"] == 2
    assert by_id["2"]["parsed"] is not None and by_id["3"]["attempts"] == 1
    res = deblind(judgements, keys, "base", "tuned")
    assert res["unparseable_items"] == 1 and res["n_judged_items"] == 3
    assert res["counts"]["loss"] == 3 and res["bowker"] is None  # Bowker needs both orders


def test_position_biased_judge_is_detected(judge_url, tmp_path):
    answers = _pair([f"POSITION question {i}" for i in range(10)], CAVEAT, NO_CAVEAT)
    res = run_judge(answers, "base", "tuned", EndpointJudge(judge_url), tmp_path, both_orders=True,
                    show_progress=False)
    pb = res["position_bias"]
    assert pb["chose_A"] == 20 and pb["share_A"] == 1.0 and pb["p_value"] < 0.001
    assert pb["consistency"] == 0.0
    # every item is a split decision: ties, and the Bowker table sits on the (A, A) diagonal → no evidence
    assert res["counts"]["tie"] == 10
    assert res["bowker"]["table"][0][0] == 10 and res["bowker"]["df"] == 0 and res["bowker"]["p_value"] == 1.0


def test_deblind_reproduces_the_papers_shape_of_result():
    """46 base wins vs 18 tuned wins (n=100) as consistent two-order verdicts → significant Bowker, base better."""
    judgements, keys = [], []
    outcomes = ["base"] * 46 + ["tuned"] * 18 + ["tie"] * 36
    for i, winner in enumerate(outcomes):
        for p, (a, b) in enumerate((("base", "tuned"), ("tuned", "base")), start=1):
            pos = "tie" if winner == "tie" else ("A" if winner == a else "B")
            judgements.append({"id": str(i), "pass": p, "parsed": {"accuracy_a": 2, "helpfulness_a": 2,
                                                                    "accuracy_b": 2, "helpfulness_b": 2,
                                                                    "preference": pos}})
            keys.append(KeyEntry(str(i), p, a, b))
    res = deblind(judgements, keys, "base", "tuned")
    assert res["counts"] == {"win": 18, "tie": 36, "loss": 46}
    assert res["bowker"]["chi2"] == pytest.approx((46 - 18) ** 2 / 64)
    assert res["bowker"]["p_value"] < 0.001
    assert res["sign_tests"]["preference"]["a_higher"] == 46
    assert res["rates"]["loss"]["ci_low"] == pytest.approx(0.3656, abs=1e-3)


def test_unreachable_judge_is_a_clean_config_error():
    judge = EndpointJudge("http://127.0.0.1:9/v1", timeout_s=2)
    judge.client = judge.client.with_options(max_retries=0)
    answers = _pair(["q"], "a", "b")
    tasks, _ = make_tasks(answers, "base", "tuned", both_orders=False)
    with pytest.raises(ConfigError, match="unreachable"):
        judge_tasks(tasks, judge)


def test_local_hf_judge_that_cannot_follow_the_format_is_recorded_not_fatal():
    """A random tiny model as judge: real local generation, never valid JSON → unparseable after one retry."""
    from studyabroadgpt.eval.judge import HFJudge

    judge = HFJudge("tiny-random", max_tokens=6)
    tasks, keys = make_tasks(_pair(["Is a visa needed?"], CAVEAT, NO_CAVEAT), "base", "tuned", both_orders=False)
    judgements = judge_tasks(tasks, judge)
    assert judgements[0]["parsed"] is None and judgements[0]["attempts"] == 2
    res = deblind(judgements, keys, "base", "tuned")
    assert res["unparseable_items"] == 1 and res["n_judged_items"] == 0
    assert res["counts"] == {"win": 0, "tie": 0, "loss": 0}


def test_rubric_flags_per_system_from_a_live_server(judge_url, tmp_path):
    """The rubric asks for coherence / invented specifics / confident errors / caveats / premise per answer;
    the de-blinded result gives each system's flag rates, and the report shows them next to the metrics."""
    from studyabroadgpt.eval.judge import FLAGS, RUBRIC

    for flag in FLAGS:
        assert flag in RUBRIC
    looping = "You can work. LOOP You can work. LOOP You can work."
    answers = _pair([f"FLAGS question {i}" for i in range(6)], looping, CAVEAT)
    res = run_judge(answers, "base", "tuned", EndpointJudge(judge_url), tmp_path, both_orders=True, seed=1,
                    show_progress=False)
    fr = res["flag_rates"]
    assert fr["base"]["incoherent"]["rate"] == 1.0 and fr["tuned"]["incoherent"]["rate"] == 0.0
    assert fr["base"]["missing_caveat"]["rate"] == 1.0 and fr["tuned"]["missing_caveat"]["rate"] == 0.0
    assert fr["base"]["incoherent"]["n"] == 6 and fr["base"]["incoherent"]["ci_low"] > 0.5
    assert json.loads((tmp_path / "judge.json").read_text())["flag_rates"] == json.loads(json.dumps(fr))


def test_judge_endpoint_against_a_real_model_server(tmp_path):
    """`eval judge --endpoint` against a real OpenAI-compatible model server (`sagpt serve` on the tiny model, a
    separate process): a judge that cannot follow the format is recorded as unparseable, never fatal."""
    from typer.testing import CliRunner

    from studyabroadgpt.cli import app
    from studyabroadgpt.eval.outputs import write_outputs

    from ..conftest import sagpt_serve

    with sagpt_serve(tmp_path / "server.log", "--model", "tiny-random", "--no-rag", "--max-tokens-cap", "16") as base:
        answers = _pair(["Can I work in the UK?", "Do I need IELTS?"], NO_CAVEAT, CAVEAT)
        write_outputs([a for ans in answers.values() for a in ans], tmp_path / "outputs.jsonl")
        r = CliRunner().invoke(app, ["eval", "judge", str(tmp_path / "outputs.jsonl"), "--out", str(tmp_path),
                                     "--endpoint", f"{base}/v1", "--model", "tiny-random", "--max-tokens", "16"],
                               catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "judge.json").read_text())
    assert res["judge"] == f"tiny-random@{base}/v1" and res["n_judgements"] == 4
    # random weights write no JSON: every judgement is recorded unparseable (after one retry), none invented
    assert res["unparseable_judgements"] == 4 and res["unparseable_items"] == 2
    rows = [json.loads(x) for x in (tmp_path / "judgements.jsonl").read_text().splitlines()]
    assert all(row["attempts"] == 2 and row["parsed"] is None for row in rows)
