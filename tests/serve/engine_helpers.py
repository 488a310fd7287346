"""What the engine tests share (test_engine_answer_path.py, test_engine_llamacpp.py, test_answer_modes.py):
ask a generator one prepared turn, count a llama.cpp server's busy slots, and the answer path with 2 facts.

One copy of each, so a change in how an engine is started, stopped or watched is made once.
"""
from __future__ import annotations

import asyncio

import httpx

from studyabroadgpt.serve.answer import Answerer, collect
from studyabroadgpt.serve.generation import GenParams, Piece

FUNDS_Q = [{"role": "user", "content": "How much money do I need to show for a UK student visa if I study in London?"}]
WORK_Q = [{"role": "user", "content": "How many hours can I work per week on a UK Student visa during my master's?"}]
LOOP = "Here is what to do:\n" + "- Check the official website for the latest visa rules.\n" * 30


def answer_turn(gen, turn, max_tokens: int = 400, params: GenParams | None = None) -> tuple[str, Piece]:
    """Start ``gen``, collect the model's whole answer to ``turn`` through the answer path's own streaming
    (loop stop included), close ``gen``; returns (raw text, last piece). All on one event loop, as a server's
    lifespan would: an HTTP engine's pooled connection must not outlive the loop it was opened on."""

    async def go() -> tuple[str, Piece]:
        await gen.start()
        try:
            return await collect(gen, turn, params or GenParams(max_tokens=max_tokens))
        finally:
            await gen.close()

    return asyncio.run(go())


def busy_slots(base_url: str, client: httpx.Client | None = None) -> int:
    """How many of a llama.cpp server's slots are decoding now (its own ``/slots``): what tells a request our
    side stopped from one the server still works on."""
    get = client.get if client is not None else httpx.get
    return sum(bool(s.get("is_processing")) for s in get(f"{base_url}/slots", timeout=5).json())


def two_facts(answerer: Answerer) -> Answerer:
    """The shipped KB's grounding and gate with 2 facts instead of 4: half the prompt to prefill per request."""
    return Answerer(answerer.searcher, answerer.auditor, top_k=2)
