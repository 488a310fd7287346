"""Writers: the protocol (always ``(text, facts)``), compose mode, the one backend check, grounded (RAFT) data."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from studyabroadgpt.config import ConfigError
from studyabroadgpt.data.io import write_conversations
from studyabroadgpt.data.load import load_valid
from studyabroadgpt.kb.audit import Auditor, has_caveat
from studyabroadgpt.serve.checks import says_no_information
from studyabroadgpt.serve.grounding import SYSTEM_PROMPT
from studyabroadgpt.synth.generate import Grounding, synthesize
from studyabroadgpt.synth.plan import plan_conversations
from studyabroadgpt.synth.backends import make_writer
from studyabroadgpt.synth.writers import BackendError, TemplateWriter, WriterError, check_backend

SYNTH = Path(__import__("studyabroadgpt.synth", fromlist=["x"]).__file__).parent


def test_template_writer_returns_text_and_the_facts_it_used(kb):
    plan = plan_conversations(kb, 1, seed=5)[0]
    text, facts = TemplateWriter(5)(plan, 0, "Which visa do I need?", plan.facts[0], [])
    assert facts == plan.facts[0]
    assert all(f.statement.rstrip(".") in text for f in facts)
    assert "### Sources" in text


def test_compose_answers_one_question_from_facts_with_given_numbers(kb):
    facts = [f for f in kb.facts if f.destination == "GB" and f.topic == "work_rights"][:2]
    text, used = TemplateWriter().compose("Can I work while studying in the UK?", facts, numbers=[3, 1],
                                          sources=False)
    assert used == facts
    assert set(map(int, re.findall(r"\[(\d+)\]", text))) == {3, 1}
    assert "http" not in text and "Sources" not in text  # the server appends its own sources list
    assert has_caveat(text)  # work rights are policy-sensitive
    result = Auditor(kb).audit_answer(text, "Can I work while studying in the UK?", facts=facts)
    assert not result.contradicted and not result.unsupported and not result.scaffolding
    with_sources, _ = TemplateWriter().compose("Can I work while studying in the UK?", facts)
    assert "### Sources" in with_sources and str(facts[0].source_url) in with_sources


def test_compose_uses_guidance_steps_and_cautions(kb):
    fact = kb.facts[0]
    guidance = SimpleNamespace(
        id="g-1", kind="guidance", topic="application_timelines", country="Germany", destination="DE",
        statement="Plan your application about a year ahead", steps=["Shortlist programmes", "Book a test date"],
        watch_out=["Uni-assist checks take several weeks"], source_url="https://www.daad.de/en/",
        source_title="DAAD", as_of=fact.as_of, policy_sensitive=False)
    text, _ = TemplateWriter().compose("How early should I apply?", [guidance], numbers=[2], sources=False)
    assert "1. Shortlist programmes. [2]" in text and "2. Book a test date. [2]" in text
    assert "Uni-assist checks take several weeks. [2]" in text and "Watch out" in text
    with pytest.raises(WriterError):
        TemplateWriter().compose("anything", [])


def test_one_backend_check_with_config_errors(kb):
    with pytest.raises(BackendError, match="unknown synth backend 'nope'") as err:
        check_backend("nope")
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ValueError)
    with pytest.raises(BackendError, match="needs --base-url and --model"):
        make_writer("openai", kb, base_url="http://127.0.0.1:1/v1")
    assert isinstance(make_writer("template", kb, seed=3), TemplateWriter)


def test_no_import_circle_between_generate_writers_and_llm():
    """writers is the leaf: neither it nor llm imports generate, so there is no generate <-> llm circle."""
    def imports(name):
        tree = ast.parse((SYNTH / f"{name}.py").read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}

    assert "generate" not in imports("llm") and "generate" not in imports("writers")
    assert "llm" not in imports("generate")  # generate reaches the openai writer through backends.make_writer
    assert "llm" not in imports("writers")   # llm imports writers' errors; writers never imports llm back


@pytest.fixture(scope="module")
def raft(kb):
    return synthesize(kb, 120, seed=4, grounding=Grounding())


def test_grounded_conversations_carry_the_server_system_prompt_and_cite_it(kb, raft):
    assert raft.quarantine == [] and len(raft.conversations) == 120
    assert raft.audited_answers == sum(t.role == "assistant" for c in raft.conversations for t in c.turns)
    for conv in raft.conversations:
        system = conv.turns[0]
        assert system.role == "system" and system.text.startswith(SYSTEM_PROMPT)
        assert conv.source == "synth-template+grounded"
        numbered = dict(re.findall(r"^\[(\d+)\] \([^)]*\) (.+)$", system.text, re.MULTILINE))
        g = conv.metadata["grounding"]
        assert len(numbered) == len(g["prompt_facts"]) >= 3
        assert set(g["distractors"]) <= set(g["prompt_facts"]) and g["distractors"]
        for fid in g["prompt_facts"]:  # the prompt holds exactly these facts, in the server's format
            assert kb.by_id[fid].statement in system.text
        assert len(conv.turns) in (3, 5)  # at most two questions (Grounding.max_turns)
        for t in (t for t in conv.turns if t.role == "assistant"):
            assert "http" not in t.text and "### Sources" not in t.text  # no URLs for a small model to garble
            for n in map(int, re.findall(r"\[(\d+)\]", t.text)):
                assert str(n) in numbered
            stated = [fid for fid in t.provenance if kb.by_id[fid].statement.rstrip(".") in t.text]
            assert stated or not t.provenance
            for fid in stated:  # a stated fact carries the number it has in the system prompt
                n = g["prompt_facts"].index(fid) + 1
                assert f"{kb.by_id[fid].statement.rstrip('.')}. [{n}]" in t.text


def test_a_share_of_questions_is_not_covered_and_the_answer_says_so(kb, raft):
    withheld = [c for c in raft.conversations if c.metadata["grounding"]["withheld_turn"] is not None]
    assert 0.05 * 120 <= len(withheld) <= 0.3 * 120
    assert raft.unanswerable_turns == len(withheld)
    for conv in withheld:
        t = conv.metadata["grounding"]["withheld_turn"]
        answer = conv.turns[2 * t + 2]
        assert answer.role == "assistant" and answer.provenance == []
        assert not re.search(r"\[\d+\]|\d", answer.text)  # no citation, no figure: nothing to cite
        assert has_caveat(answer.text) and says_no_information(answer.text)
        topic = conv.metadata["topics"][t]
        assert not any(kb.by_id[f].topic == topic and kb.by_id[f].destination == conv.metadata["destination"]
                       for f in conv.metadata["grounding"]["prompt_facts"])


def test_grounded_data_round_trips_with_its_system_turn(raft, tmp_path):
    path = write_conversations(raft.conversations[:10], tmp_path / "raft.jsonl")
    loaded = load_valid(path)
    convs = loaded.conversations
    assert loaded.quarantined == [] and [c.turns[0].role for c in convs] == ["system"] * 10
    assert convs[0].turns[0].text == raft.conversations[0].turns[0].text


def test_grounded_synthesis_is_deterministic_and_needs_the_template_backend(kb):
    a = [c.model_dump() for c in synthesize(kb, 8, seed=2, grounding=Grounding()).conversations]
    b = [c.model_dump() for c in synthesize(kb, 8, seed=2, grounding=Grounding()).conversations]
    assert a == b
    with pytest.raises(BackendError, match="template backend"):
        synthesize(kb, 1, backend="openai", grounding=Grounding(), base_url="http://x/v1", model="m")
