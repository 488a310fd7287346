"""The ``openai`` writer: answers from any OpenAI-compatible chat endpoint, grounded in the given facts.

The prompt lists the facts as numbered sources and requires the model to use only them, cite them as [n], end
with a Sources list and point to the official page on policy-sensitive topics. The model's answer is not trusted
for that: ``synthesize`` audits it like any other answer and quarantines the conversation if it fails.
"""
from __future__ import annotations

import os
from typing import Any

from ..kb.schema import POLICY_SENSITIVE, Fact
from .plan import Plan
from .template import TOPIC_LABEL
from .writers import WriterError

SYSTEM_PROMPT = """You are a careful study-abroad adviser writing one answer in an advising conversation.
Rules:
- Use ONLY the numbered facts below for any figure, date, score, duration or named visa, test or scholarship.
  Do not add numbers, names or deadlines that are not in the facts. If the facts do not cover something, say so.
- Cite the facts you use as [1], [2] right after the sentence that uses them.
- Write markdown: a short heading, bullet points, and numbered steps where the student has something to do.
- End with a "### Sources" list: one line per fact you cited, "n. title: URL (as of date)".
{caveat}- Address the student's situation: {persona}.

Facts:
{facts}"""
CAVEAT_RULE = ("- This topic is policy-sensitive: include a sentence telling the student to check the official "
               "page, with its URL, because rules change.\n")


def facts_block(facts: list[Fact]) -> str:
    return "\n".join(f"[{i}] {f.statement} (source: {f.source_title}, {f.source_url}, as of {f.as_of})"
                     for i, f in enumerate(facts, start=1))


class OpenAIWriter:
    """Callable writer for ``synthesize(backend="openai", base_url=..., model=...)``."""

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 temperature: float = 0.7, max_tokens: int = 900, timeout: float = 120.0, retrieve: int = 2,
                 kb: Any = None, **_: Any):
        from openai import OpenAI

        if not model:
            raise ValueError("the openai backend needs --model (the model name the endpoint serves)")
        # local servers (vLLM, llama.cpp, Ollama) accept any key; hosted APIs read it from the environment
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.client = OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=2)
        self.model = model
        self.source = f"synth-openai:{model}"
        self.temperature = temperature
        self.max_tokens = max_tokens
        # Besides the planned facts, the prompt gets the top facts that retrieval finds for the question itself
        # (same destination), so the model can answer what the student actually asked.
        self.retrieve = retrieve
        self._retriever = None
        self._kb = kb

    def _retrieved(self, question: str, destination: str) -> list[Fact]:
        if self.retrieve <= 0 or self._kb is None:
            return []
        if self._retriever is None:
            from ..kb.search import Retriever

            self._retriever = Retriever.from_kb(self._kb)
        return [h.fact for h in self._retriever.search(question, k=self.retrieve, destination=destination)]

    def __call__(self, plan: Plan, t: int, question: str, facts: list[Fact],
                 history: list[tuple[str, str]]) -> tuple[str, list[Fact]]:
        """The answer and the facts its prompt held (the audit checks it against exactly those)."""
        from openai import OpenAIError

        facts = list(facts) + [f for f in self._retrieved(question, plan.destination) if f not in facts]

        p = plan.persona
        persona = (f"from {p.origin}, planning {p.degree_phrase} in {p.city or plan.destination}, "
                   f"{p.budget_phrase}, {p.english_phrase}")
        topic = plan.topics[t]
        system = SYSTEM_PROMPT.format(caveat=CAVEAT_RULE if topic in POLICY_SENSITIVE else "", persona=persona,
                                      facts=facts_block(facts))
        messages = [{"role": "system", "content": system}]
        for q, a in history:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": f"{question}\n\n(Topic: {TOPIC_LABEL[topic]}.)"})
        try:
            resp = self.client.chat.completions.create(model=self.model, messages=messages,
                                                       temperature=self.temperature, max_tokens=self.max_tokens)
        except OpenAIError as exc:
            raise WriterError(f"endpoint error: {type(exc).__name__}: {exc}") from exc
        text = (resp.choices[0].message.content or "").strip() if resp.choices else ""
        if not text:
            raise WriterError("the endpoint returned an empty answer")
        return text, facts
