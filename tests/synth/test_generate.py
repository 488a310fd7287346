"""The template writer: grounded, balanced, varied, deterministic, and clean under its own audit."""
from __future__ import annotations

import re
from collections import Counter

import pytest

from studyabroadgpt.data.io import write_conversations
from studyabroadgpt.data.load import load_valid
from studyabroadgpt.kb.audit import Auditor, has_caveat
from studyabroadgpt.kb.schema import POLICY_SENSITIVE
from studyabroadgpt.synth.generate import generate, synthesize
from studyabroadgpt.synth.plan import cells, plan_conversations
from studyabroadgpt.synth.template import TOPIC_LABEL
from studyabroadgpt.synth.writers import TemplateWriter


def assistant_turns(conv):
    return [t for t in conv.turns if t.role == "assistant"]


def test_every_answer_passes_the_audit_and_nothing_is_quarantined(synth_result):
    assert synth_result.quarantine == []
    assert len(synth_result.conversations) == 240
    assert synth_result.audited_answers == sum(len(assistant_turns(c)) for c in synth_result.conversations)


def test_independent_audit_against_the_whole_kb_finds_no_contradiction(kb, synth_result):
    """Re-audit without telling the auditor which facts were used: still no contradicted or unsupported claim."""
    auditor = Auditor(kb)
    statuses = Counter()
    for conv in synth_result.conversations[:120]:
        question = ""
        for t in conv.turns:
            if t.role == "user":
                question = t.text
                continue
            result = auditor.audit_answer(t.text, question)
            statuses.update(c.status for c in result.claims)
            assert not result.contradicted, [(c.text, c.expected) for c in result.contradicted]
            assert not result.scaffolding
    assert statuses["supported"] > 300
    assert statuses["unsupported"] == 0


def test_structure_provenance_and_markdown(kb, synth_result):
    for conv in synth_result.conversations:
        roles = [t.role for t in conv.turns]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        assert 3 <= len(roles) // 2 <= 5  # opening question + 2-4 follow-ups (fewer only when the KB runs dry)
        assert conv.source == "synth-template" and conv.topic == conv.metadata["topics"][0]
        assert conv.metadata["destination"] in kb.destinations
        for t in assistant_turns(conv):
            assert t.provenance and all(fid in kb.by_id for fid in t.provenance)
            assert "[1]" in t.text and "### Sources" in t.text
            sources = t.text.split("### Sources", 1)[1]
            assert "https://" in sources and "(as of " in sources
            urls = re.findall(r"https://\S+", sources)
            assert len(urls) == len(set(urls))  # facts from one page share one numbered source
            cited = {int(n) for n in re.findall(r"\[(\d+)\]", t.text.split("### Sources")[0])}
            assert cited == set(range(1, len(urls) + 1))
    follow_ups = Counter(len(c.turns) // 2 - 1 for c in synth_result.conversations)
    assert set(follow_ups) >= {2, 3, 4}


def test_caveats_on_policy_sensitive_topics(synth_result):
    for conv in synth_result.conversations:
        for topic, t in zip(conv.metadata["topics"], assistant_turns(conv)):
            if topic in POLICY_SENSITIVE:
                assert has_caveat(t.text), t.text


def test_follow_ups_refer_to_the_previous_answer(synth_result):
    linked = 0
    for conv in synth_result.conversations:
        for i in range(2, len(conv.turns), 2):
            m = re.match(r"(?:You mentioned|OK, so|Got it, thanks for explaining) (.+?)(?:\.| is sorted\.)",
                         conv.turns[i].text)
            if m and m.group(1) not in TOPIC_LABEL.values():  # a named visa/test/scheme, not a topic
                anchor = m.group(1).removeprefix("the ")
                assert anchor.lower() in conv.turns[i - 1].text.lower(), (anchor, conv.turns[i - 1].text[:200])
                linked += 1
    assert linked > 30


def test_planner_balances_destinations_and_topics(kb):
    grid = cells(kb)
    plans = plan_conversations(kb, 2 * len(grid) + 5, seed=3)
    opening = Counter((p.destination, p.topics[0]) for p in plans)
    assert set(opening) == set(grid)
    assert max(opening.values()) - min(opening.values()) <= 1


def test_personas_vary(synth_result):
    personas = [c.metadata["persona"] for c in synth_result.conversations]
    assert {p["degree_level"] for p in personas} == {"bachelor's", "master's", "MBA", "PhD", "medicine"}
    assert len({p["origin"] for p in personas}) >= 15
    assert len({p["budget"] for p in personas}) == 3 and len({p["english"] for p in personas}) == 4
    openings = {c.turns[0].text for c in synth_result.conversations}
    assert len(openings) > 0.9 * len(synth_result.conversations)


def test_deterministic_for_a_seed(kb):
    a = [c.model_dump() for c in generate(kb, 25, seed=11)]
    b = [c.model_dump() for c in generate(kb, 25, seed=11)]
    c = [c.model_dump() for c in generate(kb, 25, seed=12)]
    assert a == b
    assert a != c


def test_failed_answers_are_quarantined_not_kept(kb):
    """A writer that slips in a wrong figure loses its conversation to quarantine, with the reason."""

    class Sloppy(TemplateWriter):
        def __call__(self, plan, t, question, facts, history, cite=None):
            text, used = super().__call__(plan, t, question, facts, history, cite=cite)
            if plan.index != 2:
                return text, used
            return text.replace("### Sources", "Also, apply for the Global Future Leaders Scholarship.\n\n"
                                "### Sources"), used

    result = synthesize(kb, 6, seed=0, writer=Sloppy(0))
    assert [q["id"] for q in result.quarantine] == ["synth-0-00002"]
    reasons = result.quarantine[0]["reasons"][0]["reasons"]
    assert "unsupported entity claim 'Global Future Leaders Scholarship'" in reasons
    assert len(result.conversations) == 5


def test_round_trip_through_the_data_layer(synth_result, tmp_path):
    path = write_conversations(synth_result.conversations[:50], tmp_path / "synth.jsonl")
    loaded = load_valid(path)
    convs, rejected = loaded.conversations, loaded.quarantined
    assert rejected == [] and len(convs) == 50
    assert convs[0].turns[1].provenance == synth_result.conversations[0].turns[1].provenance


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown synth backend"):
        synthesize(None, 1, backend="nope")
