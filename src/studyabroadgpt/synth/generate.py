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
from .backends import make_writer
from .writers import BACKENDS, BackendError, Writer, WriterError, check_backend

__all__ = ["BACKENDS", "Grounding", "SynthResult", "WriterError", "audit_problems", "generate", "synthesize"]


@dataclass(frozen=True)
class Grounding:
    """Retrieval-augmented fine-tuning (RAFT) settings: each conversation opens with the server's numbered-facts
    system prompt (``serve/grounding.py``), holding the turns' facts plus ``distractors`` unrelated ones in a
    shuffled order; answers cite those numbers. In ``unanswerable`` of the conversations the last question's
    facts are withheld and the written answer says the facts do not cover it, instead of guessing.

    ``max_turns`` keeps conversations short: the server answers one question from ~4 retrieved facts, and a
    prompt of 2 turns' facts plus distractors already takes ~500 of the recipe's 1024 tokens.
    """

    distractors: int = 2
    unanswerable: float = 0.15
    max_turns: int = 2


@dataclass
class SynthResult:
    conversations: list[Conversation]
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # {"id", "reasons", "record"}
    audited_answers: int = 0
    unanswerable_turns: int = 0

    def summary(self) -> dict[str, Any]:
        kept, bad = len(self.conversations), len(self.quarantine)
        return {"planned": kept + bad, "kept": kept, "quarantined": bad, "audited_answers": self.audited_answers,
                "turns": sum(len(c.turns) for c in self.conversations),
                "unanswerable_turns": self.unanswerable_turns}


def audit_problems(result: AuditResult, topic: str) -> list[str]:
    """Why an answer may not be kept (empty when it may)."""
    problems = [f"{c.status} {c.kind} claim {c.text!r}" + (f" (KB: {c.expected})" if c.expected else "")
                for c in result.claims if c.status != "supported"]
    if result.scaffolding:
        problems.append(f"template scaffolding left in the answer: {result.scaffolding[:3]}")
    if (topic in POLICY_SENSITIVE or result.policy_sensitive) and not result.caveat:
        problems.append("policy-sensitive answer without a caveat pointing to the official source")
    return problems


def synthesize(kb: KnowledgeBase, n: int, seed: int = 0, backend: str = "template",
               on_conversation: Callable[[int], None] | None = None, grounding: Grounding | None = None,
               writer: Writer | None = None, **backend_opts: Any) -> SynthResult:
    """Plan ``n`` conversations, write them with ``backend``, audit every answer against its own facts.

    ``grounding`` switches on retrieval-augmented fine-tuning data (see :class:`Grounding`); ``writer``
    replaces the backend's writer (custom writers, tests).
    """
    if writer is None:
        check_backend(backend, backend_opts)
    if grounding is not None and backend != "template":
        # the openai writer numbers its own facts block and writes URLs: its answers cannot cite our prompt
        raise BackendError("grounded synthesis (RAFT) needs the template backend")
    plans = plan_conversations(kb, n, seed)
    auditor = Auditor(kb)  # no retriever: each answer is checked against the facts it was written from
    writer = writer or make_writer(backend, kb, seed, **backend_opts)
    source = writer.source + ("+grounded" if grounding else "")
    out = SynthResult(conversations=[])
    for plan in plans:
        rng = random.Random(f"{seed}-{plan.index}-q")
        prompt = _grounded_prompt(kb, plan, grounding, seed) if grounding else None
        turns: list[Turn] = [Turn(role="system", text=prompt.system)] if prompt else []
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
                if prompt and t == prompt.withheld_turn:
                    text, facts = template.not_covered(random.Random(f"{seed}-{plan.index}-{t}-a"), topic,
                                                       plan.destination), []
                    out.unanswerable_turns += 1
                elif prompt:
                    text, facts = writer(plan, t, question, facts, history, cite=prompt.numbers)
                else:
                    text, facts = writer(plan, t, question, facts, history)
            except WriterError as exc:
                problems.append({"turn": len(turns) + 1, "reasons": [str(exc)]})
                break
            # a follow-up may refer back to what the conversation already established ("the Graduate Route
            # you mentioned"), so the earlier turns' facts count as support too; provenance records what was used
            seen_facts += [f for f in facts if f not in seen_facts]
            result = auditor.audit_answer(text, question, facts=seen_facts)
            out.audited_answers += 1
            reasons = audit_problems(result, topic)
            if reasons:
                problems.append({"turn": len(turns) + 1, "reasons": reasons})
            used = [f.id for f in facts]
            used += [c.fact_id for c in result.claims if c.fact_id and c.fact_id not in used]
            turns += [Turn(role="user", text=question), Turn(role="assistant", text=text, provenance=used)]
            history.append((question, text))
        metadata = {"destination": plan.destination, "topics": plan.topics, "persona": plan.persona.to_dict(),
                    "seed": seed, "backend": backend, "kb_version": kb.version}
        if prompt:
            metadata["grounding"] = {"prompt_facts": [f.id for f in prompt.facts],
                                     "distractors": prompt.distractor_ids, "withheld_turn": prompt.withheld_turn}
        conv = Conversation(id=f"synth-{seed}-{plan.index:05d}", turns=turns, topic=plan.topics[0], source=source,
                            metadata=metadata)
        if problems or not any(t.role == "assistant" for t in turns):
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


@dataclass
class _Prompt:
    system: str
    facts: list[Fact]
    numbers: dict[str, int]
    distractor_ids: list[str]
    withheld_turn: int | None


def _grounded_prompt(kb: KnowledgeBase, plan: Plan, g: Grounding, seed: int) -> _Prompt:
    """Trim the plan to ``g.max_turns`` and build its numbered-facts system prompt (mutates ``plan``)."""
    from ..serve.grounding import Source, grounded_messages

    rng = random.Random(f"{seed}-{plan.index}-raft")
    del plan.topics[g.max_turns:], plan.facts[g.max_turns:]
    last = len(plan.topics) - 1
    # Withhold the last question's facts only when no earlier turn is on the same topic (it would answer it).
    withheld = last if rng.random() < g.unanswerable and plan.topics[last] not in plan.topics[:last] else None
    in_prompt = [f for t, fs in enumerate(plan.facts) if t != withheld for f in fs]
    cells = {(plan.destination, t) for t in plan.topics}
    pool = [f for f in kb.facts if (f.destination, f.topic) not in cells]
    # Hard distractors first: same destination (other topic) or same topic (other destination).
    near = [f for f in pool if f.destination == plan.destination or f.topic in plan.topics]
    k = g.distractors + (2 if withheld is not None and not in_prompt else 0)  # never an almost-empty prompt
    distractors = rng.sample(near, min(k, len(near)))
    facts = in_prompt + distractors
    rng.shuffle(facts)
    sources = [Source(i + 1, f) for i, f in enumerate(facts)]
    system = grounded_messages([], sources)[0]["content"]
    return _Prompt(system, facts, {f.id: s.n for f, s in zip(facts, sources)}, [f.id for f in distractors],
                   withheld)
