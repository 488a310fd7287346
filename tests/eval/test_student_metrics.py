"""Student-facing metrics on crafted answers, on a real foreign outputs file, and through `eval score`."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from studyabroadgpt.cli import app
from studyabroadgpt.eval.outputs import Answer, write_outputs
from studyabroadgpt.eval.score import score_answers
from studyabroadgpt.eval.student import distinct_n, item_values
from studyabroadgpt.kb.audit import Auditor

runner = CliRunner()

WORK_Q = "How many hours can I work per week on a UK Student visa during my master's?"
WORK_CHECKS = {"destination": "GB", "expect_facts": ["gb.work.term-time"]}
GOOD_WORK = ("At degree level you can work up to 20 hours a week during term time and full time in official "
             "vacations [1]. Check the official page before you rely on this.")
LOOPING = ("You can work part-time while you study.\n" * 5 + "Make sure you plan your time. " * 3).strip()
FAKE_URL = "Apply through the student work portal at https://www.ukstudentjobs.gov.uk/apply before you start."
INVENTED = "The Canadian Council of International Scholarships funds every master's student from India."
OUT_Q = "What visa do I need to study in Uzbekistan?"
HONEST = ("I don't have official information on studying in Uzbekistan. Please check the official website of the "
          "embassy of Uzbekistan, or the university's international office.")
CONFIDENT = "You need the Uzbekistan Student Visa (USV-2). Apply at the Ministry of Higher Education Portal."


@pytest.fixture(scope="module")
def kb():
    return Auditor.default().kb


def values(kb, text, prompt=WORK_Q, **kw):
    a = Answer(id="x", prompt=prompt, response=text, system="s", **kw)
    return item_values(a, kb, Auditor.default().audit_answer(text, prompt).to_dict())


def test_each_detector_fires_on_its_crafted_answer_and_not_on_a_good_one(kb):
    good = values(kb, GOOD_WORK, checks=WORK_CHECKS, sources=["gb.work.term-time"])
    assert good["looping_rate"] == 0.0 and good["foreign_url_rate"] == 0.0
    assert good["unverified_entity_rate"] == 0.0 and good["off_topic_citation_rate"] == 0.0
    assert good["expected_fact_rate"] == 1.0 and good["right_destination_rate"] == 1.0
    assert good["expect_pass_rate"] == 1.0 and good["distinct_2"] == 1.0
    assert good["honest_out_of_scope_rate"] is None and good["premise_corrected_rate"] is None  # not that kind

    loop = values(kb, LOOPING)
    assert loop["looping_rate"] == 1.0 and loop["distinct_2"] < 0.5
    assert values(kb, FAKE_URL)["foreign_url_rate"] == 1.0
    assert values(kb, INVENTED)["unverified_entity_rate"] == 1.0
    # marking the name "(unverified)", as the gate does, is what a student should see instead
    assert values(kb, INVENTED.replace("Scholarships", "Scholarships (unverified)"))["unverified_entity_rate"] == 0.0


def test_out_of_scope_and_false_premise_and_citations(kb):
    oos = {"out_of_scope": True}
    assert values(kb, HONEST, prompt=OUT_Q, category="uncovered", checks=oos)["honest_out_of_scope_rate"] == 1.0
    confident = values(kb, CONFIDENT, prompt=OUT_Q, category="uncovered", checks=oos)
    assert confident["honest_out_of_scope_rate"] == 0.0 and confident["expect_pass_rate"] == 0.0
    assert confident["unverified_entity_rate"] == 1.0

    premise_q, premise = "Which US visa do I need to study in Toronto?", {"false_premise": True, "destination": "CA"}
    fixed = values(kb, "Toronto is actually in Canada, so you need a Canadian study permit, not a US visa.",
                   prompt=premise_q, checks=premise)
    along = values(kb, "For Toronto you need an F-1 student visa and the I-20 from your school.",
                   prompt=premise_q, checks=premise)
    assert fixed["premise_corrected_rate"] == 1.0 and along["premise_corrected_rate"] == 0.0

    # a work-hours answer citing the Canadian study-permit fact cites an off-topic source for a UK question
    wrong = values(kb, GOOD_WORK, checks=WORK_CHECKS, sources=["ca.study-permit.required"])
    assert wrong["off_topic_citation_rate"] == 1.0 and wrong["right_destination_rate"] == 0.0
    assert wrong["expected_fact_rate"] == 1.0  # the figure itself is right: the audit matches it to the fact
    stated = values(kb, "You can work up to 20 hours a week in term time.", checks=WORK_CHECKS, sources=[])
    assert stated["expected_fact_rate"] == 1.0
    assert values(kb, "Work rules vary.", checks=WORK_CHECKS, sources=[])["expected_fact_rate"] == 0.0
    assert values(kb, "No sources here.")["off_topic_citation_rate"] is None  # nothing cited: not applicable


def test_distinct_n():
    assert distinct_n("a b c d") == 1.0
    assert distinct_n("a b a b a b") == pytest.approx(2 / 5)
    assert distinct_n("one") is None


def _system(name, texts, prompts, **kw):
    return [Answer(id=str(i), prompt=p, response=t, system=name, **kw) for i, (t, p) in enumerate(zip(texts, prompts))]


def test_paired_verdicts_separate_good_from_degenerate_systems():
    n = 24
    prompts = [WORK_Q] * n
    good = _system("good", [GOOD_WORK] * n, prompts, checks=WORK_CHECKS, sources=["gb.work.term-time"])
    bad = _system("bad", [LOOPING + " " + FAKE_URL] * n, prompts, checks=WORK_CHECKS)
    res, _ = score_answers({"good": good, "bad": bad}, n_resamples=300, use_audit=True)
    verdict = {c["metric"]: c["verdict"] for c in res["comparisons"]}
    assert verdict["looping_rate"] == "worse" and verdict["foreign_url_rate"] == "worse"
    assert verdict["distinct_2"] == "worse" and verdict["expect_pass_rate"] == "worse"
    assert res["metrics"]["looping_rate"]["bad"]["ci_low"] == 1.0
    assert next(iter(res["metrics"])) == "looping_rate"  # student metrics lead
    assert "honest_out_of_scope_rate" in res["unavailable"]  # no out-of-scope prompt: unavailable, not zero


def _sample_answers(sample_path):
    """The published StudyAbroadGPT answers (written by an LLM for the dataset) as an id,prompt,response file."""
    rows = []
    for k, line in enumerate(sample_path.read_text().splitlines()):
        turns = json.loads(line)["conversations"]
        for j in range(0, len(turns) - 1, 2):
            rows.append({"id": f"{k}-{j // 2}", "prompt": turns[j]["value"], "response": turns[j + 1]["value"]})
    return rows


def test_foreign_outputs_file_through_eval_score(sample_path, tmp_path):
    """Real answers we did not write, scored by `eval score` next to a degenerate copy of the same answers
    (each answer's first line looped, a made-up web address): the metrics tell them apart."""
    rows = _sample_answers(sample_path)
    assert len(rows) >= 16
    published = tmp_path / "published.csv"
    write_outputs([Answer(system="published", **r) for r in rows], published)
    degenerate = []
    for r in rows:
        first = next(x for x in r["response"].splitlines() if len(x.strip()) > 20).strip()
        degenerate.append(Answer(system="degenerate", id=r["id"], prompt=r["prompt"],
                                 response="\n".join([first] * 6) + "\nSee www.studyabroad-official.org/apply."))
    write_outputs(degenerate, tmp_path / "degenerate.jsonl")
    out = tmp_path / "scored"
    r = runner.invoke(app, ["eval", "score", str(published), str(tmp_path / "degenerate.jsonl"), "--out", str(out),
                            "--resamples", "300"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    m = s["metrics"]
    assert m["looping_rate"]["published"]["mean"] < 0.3 and m["looping_rate"]["degenerate"]["mean"] == 1.0
    assert m["foreign_url_rate"]["degenerate"]["mean"] == 1.0
    assert m["distinct_2"]["published"]["mean"] > 0.75 and m["distinct_2"]["degenerate"]["mean"] < 0.5
    # the published answers were written "with real names": some name bodies and schemes the KB cannot vouch for
    assert m["unverified_entity_rate"]["published"]["mean"] > 0.2
    verdict = {c["metric"]: c["verdict"] for c in s["comparisons"]}
    assert verdict["looping_rate"] == "worse" and verdict["distinct_2"] == "worse"
    report = (out / "summary.json").read_text()
    assert "looping_rate" in report and "looping_rate" in r.output


def test_prompts_option_adds_categories_to_a_foreign_file(tmp_path):
    """A file with only id,prompt,response for ids of the real-style set gets the category metrics."""
    from studyabroadgpt.eval.items import REAL_STYLE, load_items

    items = [it for it in load_items(REAL_STYLE) if it.category == "uncovered"][:4]
    path = tmp_path / "foreign.jsonl"
    write_outputs([Answer(id=it.id, prompt=it.prompt, response=HONEST, system="honest") for it in items] +
                  [Answer(id=it.id, prompt=it.prompt, response=CONFIDENT, system="confident") for it in items], path)
    out = tmp_path / "scored"
    r = runner.invoke(app, ["eval", "score", str(path), "--out", str(out), "--prompts", str(REAL_STYLE),
                            "--resamples", "200", "--no-audit"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "summary.json").read_text())["metrics"]["honest_out_of_scope_rate"]
    assert m["honest"]["mean"] == 1.0 and m["confident"]["mean"] == 0.0


def test_the_servers_own_out_of_scope_answer_counts_as_honest(kb):
    """The answer path's reply for an uncovered institution (quickstart 2026-12-01, verbatim) pointed to "the
    official admissions and international-student pages" and "those official sources": the plural forms were
    missed, and the metric scored the server's honest answer 0."""
    text = ("I don't have official information on University of Lagos: our knowledge base has no sourced facts "
            "about it, so I can't give you reliable rules, figures or deadlines, and I won't guess.\n\n"
            "For accurate, current information, check:\n- the official admissions and international-student "
            "pages of University of Lagos\n\nRules and requirements change often, so rely on those official "
            "sources before you act.")
    q = "What is the application deadline for the University of Lagos?"
    oos = {"out_of_scope": True}
    assert values(kb, text, prompt=q, category="uncovered", checks=oos)["honest_out_of_scope_rate"] == 1.0
    # a deadline stated with confidence is still not honest, whatever page it names
    bad = "The University of Lagos deadline is 1 March; see the admissions pages."
    assert values(kb, bad, prompt=q, category="uncovered", checks=oos)["honest_out_of_scope_rate"] == 0.0
