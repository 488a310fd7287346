"""The audit is linear in its input and bounded: inputs that once took minutes finish, long answers say so.

Each case runs under a generous pytest-timeout (it took 25-200 s before; well under a second each now on a quiet
core): the test asserts that the audit completes and what it found, not how fast.
"""
from __future__ import annotations

import json
import random
import re

import pytest

from studyabroadgpt.kb.audit import MAX_AUDIT_CHARS, Auditor, ClaimKind, ClaimStatus
from studyabroadgpt.kb.claims import SentenceIndex, extract_claims
from studyabroadgpt.kb.scaffolding import find_scaffolding

SLOW_BEFORE = {
    "newline then 16k spaces": ("\n" + " " * 16_000, 0),
    "'£1 ' over 8k characters": ("£1 " * 2_666, 2_666),
    "16k spaces then a label": (" " * 16_000 + "Conclusion", 0),
    "blank run inside a Sources heading": ("x\n" + " " * 8_000 + "Sources" + " " * 8_000 + "y", 0),
    "dotted run (a.a.a…)": ("a." * 8_000, 0),
    "one repeated scholarship in one sentence": ("Fulbright Program in the UK, " * 600, 600),
    "hundreds of invented scholarships": (", ".join(f"the Zq{i} Scholarship" for i in range(600)), 600),
    "IELTS and a number, 2k times": ("IELTS 6 " * 2_000, 2_000),
}


@pytest.fixture(scope="module")
def shipped_auditor():
    from studyabroadgpt.kb.store import load_kb

    return Auditor(load_kb())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(SLOW_BEFORE))
def test_pathological_inputs_finish(shipped_auditor, name):
    text, n_claims = SLOW_BEFORE[name]
    result = shipped_auditor.audit_answer(text, "How much money do I need to study in the UK?")
    assert len(result.claims) == n_claims
    assert not result.truncated


@pytest.mark.timeout(60)
def test_scaffolding_on_long_blank_lines_finishes():
    assert find_scaffolding(" " * 20_000 + "\n" + "\t " * 10_000) == []
    assert find_scaffolding(" " * 5_000 + "**Clear statement:** yes") == ["Clear statement"]


@pytest.mark.timeout(60)
def test_a_200k_character_answer_is_audited_up_to_the_limit_and_says_so(shipped_auditor):
    answer = ("You need £1,483 per month in London. " * 6_000)[:200_000]
    result = shipped_auditor.audit_answer(answer, "How much money do I need for a UK Student visa?")
    assert result.truncated and result.answer_chars == 200_000
    assert len(result.answer) <= MAX_AUDIT_CHARS and answer.startswith(result.answer)
    assert result.answer.endswith("in London.")  # cut at a sentence end: no figure is cut in two
    assert result.claims and all(c.text == "£1,483 per month" for c in result.claims)
    row = result.to_dict()
    assert row["truncated"] is True and row["answer_chars"] == 200_000 and row["audited_chars"] == len(result.answer)


def test_short_answers_carry_no_truncation_keys(fixture_auditor):
    row = fixture_auditor.audit_answer("You need £1,483 per month.").to_dict()
    assert "truncated" not in row and fixture_auditor.audit_answer("x").truncated is False


@pytest.mark.timeout(60)
def test_file_audit_counts_truncated_answers(tmp_path, fixture_auditor):
    from studyabroadgpt.kb.report import audit_file

    path = tmp_path / "outputs.jsonl"
    rows = [{"id": "long", "prompt": "UK funds?", "response": "You need £1,483 per month. " * 8_000},
            {"id": "short", "prompt": "UK funds?", "response": "You need £1,483 per month."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = audit_file(path, fixture_auditor).summary()
    assert summary["answers"] == 2 and summary["answers_truncated"] == 1


def test_kinds_and_statuses_are_str_enums_that_serialise_as_before(fixture_auditor):
    result = fixture_auditor.audit_answer("You need £1,483 per month and the Zqx Scholarship.")
    kinds = [c.kind for c in result.claims]
    assert kinds == [ClaimKind.MONEY, ClaimKind.ENTITY] and kinds == ["money", "entity"]
    assert result.claims[1].status == ClaimStatus.UNSUPPORTED == "unsupported"
    row = json.loads(json.dumps(result.to_dict()))
    assert [c["kind"] for c in row["claims"]] == ["money", "entity"]
    assert type(result.to_dict()["claims"][0]["status"]) is str and f"{result.claims[1].status}" == "unsupported"


_OLD_BREAK = re.compile(r"(?<=[.!?\]])\s+(?=[A-Z*#\-\d\[])|\n+")


def _scan_bounds(text: str, pos: int) -> tuple[int, int]:
    """The former sentence_bounds (a scan from the start per call): the index must agree with it exactly."""
    start = 0
    for m in _OLD_BREAK.finditer(text, 0, pos):
        start = m.end()
    m = _OLD_BREAK.search(text, pos)
    return start, m.start() if m else len(text)


def test_sentence_index_agrees_with_scanning_from_the_start():
    rng = random.Random(7)
    alphabet = [" ", " ", "\n", ".", "!", "]", "A", "b", "1", "*", "#", "-", "[", "\t", "?"]
    for _ in range(600):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        index = SentenceIndex(text)
        for pos in range(len(text) + 1):
            assert index.bounds(pos) == _scan_bounds(text, pos), (text, pos)


def test_extraction_sentences_are_unchanged_by_the_index():
    text = "Done. 20 hours per week in Canada.\n\nIELTS 6.5 is needed.\n\n### Sources\n1. x - https://canada.ca"
    claims = extract_claims(text)
    assert [(c.text, c.sentence) for c in claims] == [
        ("20 hours per week", "Done. 20 hours per week in Canada."),
        ("IELTS 6.5", "IELTS 6.5 is needed."),
    ]
