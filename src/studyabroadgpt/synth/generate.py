"""Grounded conversation synthesis: plan → write each turn from KB facts → audit → keep or quarantine.

Two writers share the planner and the audit. ``template`` is offline and deterministic for a seed; ``openai``
asks any OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama, a hosted API) to write the answers from the same
facts. Whatever the writer, an answer with a contradicted or unsupported claim, leftover template scaffolding or
a missing caveat on a policy-sensitive topic never reaches the dataset: its conversation goes to quarantine with
the reasons.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from ..data.schema import Conversation, Turn
from ..kb.audit import Auditor, AuditResult
from ..kb.schema import POLICY_SENSITIVE, Fact
from ..kb.store import KnowledgeBase
from . import template
from .plan import Plan, plan_conversations

BACKENDS = ("template", "openai")


@dataclass
class SynthResult:
    conversations: list[Conversation]
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # {"id", "reasons", "record"}
    audited_answers: int = 0

    def summary(self) -> dict[str, Any]:
        kept, bad = len(self.conversations), len(self.quarantine)
        return {"planned": kept + bad, "kept": kept, "quarantined": bad, "audited_answers": self.audited_answers,
                "turns": sum(len(c.turns) for c in self.conversations)}


def audit_problems(result: AuditResult, topic: str) -> list[str]:
    """Why an answer may not be kept (empty when it may)."""
    problems = [f"{c.status} {c.kind} claim {c.text!r}" + (f" (KB: {c.expected})" if c.expected else "")
                for c in result.claims if c.status != "supported"]
    if result.scaffolding:
        problems.append(f"template scaffolding left in the answer: {result.scaffolding[:3]}")
    if (topic in POLICY_SENSITIVE or result.policy_sensitive) and not result.caveat:
        problems.append("policy-sensitive answer without a caveat pointing to the official source")
    return problems


# Writer signature: (plan, turn index, question, facts, history of (question, answer)) -> answer text, or
# (answer text, the facts it was given) when the writer added facts of its own
Writer = Callable[[Plan, int, str, list[Fact], list[tuple[str, str]]], "str | tuple[str, list[Fact]]"]


def synthesize(kb: KnowledgeBase, n: int, seed: int = 0, backend: str = "template",
               on_conversation: Callable[[int], None] | None = None, **backend_opts: Any) -> SynthResult:
    """Plan ``n`` conversations, write them with ``backend``, audit every answer against its own facts."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown synth backend {backend!r}; use one of {', '.join(BACKENDS)}")
    plans = plan_conversations(kb, n, seed)
    auditor = Auditor(kb)  # no retriever: each answer is checked against the facts it was written from
    writer: Writer
    if backend == "template":
        writer = _template_writer(seed)
        source = "synth-template"
    else:
        from .llm import OpenAIWriter

        writer = OpenAIWriter(kb=kb, **backend_opts)
        source = f"synth-openai:{writer.model}"
    out = SynthResult(conversations=[])
    for plan in plans:
        rng = random.Random(f"{seed}-{plan.index}-q")
        turns: list[Turn] = []
        history: list[tuple[str, str]] = []
        problems: list[dict[str, Any]] = []
        seen_facts: list[Fact] = []
        for t, (topic, facts) in enumerate(zip(plan.topics, plan.facts)):
            if t == 0:
                question = template.opening_question(rng, topic, plan.persona, plan.destination)
            else:
                question = template.follow_up_question(rng, topic, plan.facts[t - 1], plan.topics[t - 1],
                                                       history[-1][1] if history else "")
            try:
                written = writer(plan, t, question, facts, history)
            except WriterError as exc:
                problems.append({"turn": 2 * t + 1, "reasons": [str(exc)]})
                break
            # a writer may add facts of its own (the openai writer adds retrieved ones): audit against those too
            text, facts = written if isinstance(written, tuple) else (written, facts)
            # a follow-up may refer back to what the conversation already established ("the Graduate Route
            # you mentioned"), so the earlier turns' facts count as support too; provenance records what was used
            seen_facts += [f for f in facts if f not in seen_facts]
            result = auditor.audit_answer(text, question, facts=seen_facts)
            out.audited_answers += 1
            reasons = audit_problems(result, topic)
            if reasons:
                problems.append({"turn": 2 * t + 1, "reasons": reasons})
            used = [f.id for f in facts]
            used += [c.fact_id for c in result.claims if c.fact_id and c.fact_id not in used]
            turns += [Turn(role="user", text=question), Turn(role="assistant", text=text, provenance=used)]
            history.append((question, text))
        conv = Conversation(
            id=f"synth-{seed}-{plan.index:05d}", turns=turns, topic=plan.topics[0], source=source,
            metadata={"destination": plan.destination, "topics": plan.topics, "persona": plan.persona.to_dict(),
                      "seed": seed, "backend": backend, "kb_version": kb.version},
        )
        if problems or not turns:
            out.quarantine.append({"id": conv.id, "reasons": problems or [{"reasons": ["no turns written"]}],
                                   "record": conv.to_sharegpt()})
        else:
            out.conversations.append(conv)
        if on_conversation:
            on_conversation(plan.index + 1)
    return out


def generate(kb: KnowledgeBase, n: int, seed: int = 0, backend: str = "template",
             **backend_opts: Any) -> list[Conversation]:
    """The conversations that passed the audit (see :func:`synthesize` for the quarantine too)."""
    return synthesize(kb, n, seed=seed, backend=backend, **backend_opts).conversations


class WriterError(Exception):
    """A writer that could not produce an answer (endpoint down, empty reply): the conversation is quarantined."""


def _template_writer(seed: int) -> Writer:
    def write(plan: Plan, t: int, question: str, facts: list[Fact], history: list[tuple[str, str]]) -> str:
        rng = random.Random(f"{seed}-{plan.index}-{t}-a")
        previous = (plan.topics[t - 1], plan.facts[t - 1], history[-1][1]) if t and history else None
        return template.answer(rng, plan.topics[t], facts, plan.persona, plan.destination, previous=previous,
                               question=question)

    return write
