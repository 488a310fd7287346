"""The labelled gate set (tests/serve/gate_cases*.yaml): correction precision and recall on cases with
known answers — right corrections, wrong-slot traps, premises in the question, negations, supported figures.

``score_cases`` is shared with ``benchmarks/bench_gate.py``, which writes the report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).parent
CASE_FILES = sorted(HERE.glob("gate_cases*.yaml"))


def load_cases() -> list[dict[str, Any]]:
    cases = []
    for path in CASE_FILES:
        for i, case in enumerate(yaml.safe_load(path.read_text(encoding="utf-8")) or []):
            for key in ("id", "kind", "question", "answer", "facts"):
                if key not in case:
                    raise ValueError(f"{path.name}: case {i}: field {key!r} missing")
            cases.append(case)
    return cases


def run_case(case: dict[str, Any], auditor: Any, kb: Any) -> dict[str, Any]:
    from studyabroadgpt.serve.gate import CORRECTIONS, run_gate
    from studyabroadgpt.serve.grounding import Source

    sources = [Source(i + 1, kb.by_id[fid]) for i, fid in enumerate(case["facts"])]
    result = run_gate(auditor, case["answer"], case["question"], sources, kb=kb, context=case.get("context", ""))
    edits = [c.to_dict() for c in result.changes if c.action in CORRECTIONS]
    return {**match_edits(case, edits), "text": result.text}


def match_edits(case: dict[str, Any], edits: list[dict[str, Any]]) -> dict[str, Any]:
    """Which of the gate's corrections (dicts with action, claim, replacement, fact_id, sentence) the case
    asked for."""
    expected = [("corrected", e["claim"], str(e["to"])) for e in case.get("corrections", [])]
    expected += [("corrected_rule", None, fid) for fid in case.get("rules", [])]
    # `removals`: sentences that must go (a substring of the removed sentence)
    expected += [("removed", sub, None) for sub in case.get("removals", [])]
    right, matched = [], set()
    for e in edits:
        hit = None
        for j, (action, claim, to) in enumerate(expected):
            if j in matched or e["action"] != action:
                continue
            if action == "corrected" and e.get("claim") == claim and to in (e.get("replacement") or ""):
                hit = j
            elif action == "corrected_rule" and e.get("fact_id") == to:
                hit = j
            elif action == "removed" and claim in (e.get("sentence") or e.get("claim") or ""):
                hit = j
            if hit is not None:
                break
        if hit is not None:
            matched.add(hit)
        right.append(hit is not None)
    return {"id": case["id"], "kind": case["kind"], "edits": len(edits), "right": sum(right),
            "wrong": [f"{e['action']}: {e.get('claim')} -> {e.get('replacement') or e.get('reason')}"
                      for e, ok in zip(edits, right) if not ok],
            "expected": len(expected), "found": len(matched)}


def score_cases(cases: list[dict[str, Any]], auditor: Any, kb: Any) -> dict[str, Any]:
    return summarize([run_case(c, auditor, kb) for c in cases])


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    edits = sum(r["edits"] for r in rows)
    right = sum(r["right"] for r in rows)
    expected = sum(r["expected"] for r in rows)
    found = sum(r["found"] for r in rows)
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        k = by_kind.setdefault(r["kind"], {"cases": 0, "edits": 0, "right": 0, "expected": 0, "found": 0})
        for f in ("edits", "right", "expected", "found"):
            k[f] += r[f]
        k["cases"] += 1
    return {"cases": len(rows), "edits": edits, "right_edits": right, "expected": expected, "found": found,
            "precision": right / edits if edits else 1.0, "recall": found / expected if expected else 1.0,
            "by_kind": by_kind, "rows": rows}


@pytest.fixture(scope="module")
def kb_and_auditor():
    from studyabroadgpt.kb.audit import Auditor
    from studyabroadgpt.kb.store import load_kb

    kb = load_kb()
    return kb, Auditor(kb)


def test_case_set_is_big_and_mixed():
    cases = load_cases()
    assert len(cases) >= 150 and len({c["id"] for c in cases}) == len(cases)
    kinds = {c["kind"] for c in cases}
    assert {"right_correction", "wrong_slot", "premise", "negation", "supported"} <= kinds


def test_gate_precision_and_recall_on_the_labelled_set(kb_and_auditor):
    kb, auditor = kb_and_auditor
    score = score_cases(load_cases(), auditor, kb)
    wrong = [(r["id"], r["wrong"]) for r in score["rows"] if r["wrong"]]
    assert score["precision"] >= 0.98, wrong
    assert score["recall"] >= 0.85, [r["id"] for r in score["rows"] if r["found"] < r["expected"]]


@pytest.mark.parametrize("case_id", ["t-gb-one-year-course-from-question", "p-gre-1000", "t-gb-london-vs-outside",
                                     "p-40-hours", "n-gb-family-phd-yes", "s-gb-work"])
def test_traps_are_never_corrected(case_id, kb_and_auditor):
    kb, auditor = kb_and_auditor
    case = next(c for c in load_cases() if c["id"] == case_id)
    row = run_case(case, auditor, kb)
    assert row["edits"] == 0, row["wrong"]


def test_every_correction_records_the_fact_and_the_slot(kb_and_auditor):
    from studyabroadgpt.serve.gate import run_gate
    from studyabroadgpt.serve.grounding import Source

    kb, auditor = kb_and_auditor
    sources = [Source(1, kb.by_id["gb.work.term-time"]), Source(2, kb.by_id["gb.work.below-degree"])]
    result = run_gate(auditor, "During term time you can work up to 15 hours a week.",
                      "How many hours can I work during my master's in the UK?", sources, kb=kb)
    fixed = next(c for c in result.changes if c.action == "corrected")
    assert fixed.fact_id == "gb.work.term-time" and fixed.citation == 1
    assert fixed.slot["claim_slot"]["subject"] == fixed.slot["fact_slot"]["subject"] == "work_hours"
    assert fixed.slot["fact_slot"]["level"] == "degree" and fixed.slot["value_key"]
    assert "20 hours per week [1]" in result.text and "15 hours" not in result.text
