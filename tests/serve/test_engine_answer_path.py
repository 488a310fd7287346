"""The answer path on every engine: grounding, the gate, answer modes, streaming and limits, each run against
the real SmolLM2-135M behind ``--engine hf`` (transformers, in process), ``--engine llamacpp`` (its GGUF in a
real llama.cpp server process) and ``--engine openai`` (our generator pointed at that same llama.cpp server, as
a user would point it at one they run).

What differs between engines is how text arrives (piece sizes, the last piece's finish reason and token counts),
how a request is stopped (a batch row vs closing an HTTP stream), and how errors and deadlines surface; the
answer path's own logic is tested with scripted models in test_grounding.py / test_answer_modes.py. So these
tests check what must hold whatever the model writes, and plant a known wrong figure or a loop *in front of*
the engine's real stream (``Through``) so that the gate and the loop stop run on every engine's output.

Cost: one llama.cpp server for the session (conftest.py), the hf model loaded once (``smollm2``), 2 retrieved
facts per question (half the prompt to prefill), ≤ 16 new tokens per answer except where a test needs the
engine to be busy.
"""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import httpx
import pytest

from studyabroadgpt.serve.app import create_app
from studyabroadgpt.serve.checks import assess
from studyabroadgpt.serve.generation import GenParams, Piece
from studyabroadgpt.serve.settings import ServeSettings

from .engine_helpers import FUNDS_Q, LOOP, WORK_Q, answer_turn, busy_slots, two_facts

# Checks what is done to generated text: auto would answer these rule questions from the facts.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("generated_rule_answers")]

WRONG = "For a course in London you must show £1,900 per month for up to 9 months."
# vLLM (its CPU build here) runs only where it is installed in its own venv (--vllm-bin / SAGPT_VLLM, or on
# PATH): it takes minutes to start, hence slow.
ENGINES = ["hf", "llamacpp", "openai", pytest.param("vllm", marks=pytest.mark.slow)]


class Through:
    """The engine's real stream, with ``prefix`` placed before the engine's first piece: the gate and the
    checks then see a known planted error *and* the engine's own pieces, finish reason and token counts.
    The engine's stream is opened first, so stopping early closes a request the engine is really running.
    Counts the calls, so a test can tell whether the engine was asked at all."""

    def __init__(self, inner, prefix: str = ""):
        self.inner, self.prefix, self.calls = inner, prefix, 0

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def in_flight(self) -> int:
        return self.inner.in_flight

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def stream(self, messages, params: GenParams) -> AsyncIterator[Piece]:
        self.calls += 1
        pieces = self.inner.stream(messages, params)
        try:
            first = await anext(pieces)
            for i in range(0, len(self.prefix), 60):  # in pieces, as an engine streams
                yield Piece(self.prefix[i:i + 60])
            yield first
            async for piece in pieces:
                yield piece
        finally:
            await pieces.aclose()


@pytest.fixture(scope="module")
def answerer(answerer):
    return two_facts(answerer)


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    """(name, generator): the real SmolLM2 behind each engine."""
    name = request.param
    if name == "hf":
        from studyabroadgpt.serve.hf_engine import HFGenerator

        model, tok = request.getfixturevalue("smollm2")
        yield name, HFGenerator(model, tok, model_name="smollm2", max_batch=4)
    elif name == "vllm":
        yield name, request.getfixturevalue("vllm_engine")
    else:
        server = request.getfixturevalue("llamacpp")
        if name == "llamacpp":
            yield name, server
        else:
            from studyabroadgpt.serve.openai_engine import OpenAICompatGenerator

            yield name, OpenAICompatGenerator(f"{server.base_url}/v1", None)  # the model name from /v1/models


@pytest.fixture(scope="module")
def vllm_engine():
    """``--engine vllm`` exactly as ``sagpt serve`` builds it (EngineOptions.build), started once."""
    from studyabroadgpt.models import ModelLoadError
    from studyabroadgpt.serve.cli import EngineOptions
    from studyabroadgpt.serve.vllm_engine import vllm_python

    from .conftest import free_port

    try:
        vllm_python()
    except ModelLoadError as exc:
        pytest.skip(f"vLLM is not installed here: {exc}")
    gen = EngineOptions(engine="vllm", model="default", vllm_port=free_port()).build()
    asyncio.run(gen.start())
    yield gen
    asyncio.run(gen.close())
    assert not gen.process.running()


def wait_idle(gen, name: str, within_s: float = 20.0) -> float:
    """Seconds until the engine has nothing left generating; fails after ``within_s``. For the llama.cpp server
    this reads its own /slots (vLLM: its running-requests gauge), so a request our side forgot but the server
    still decodes is caught."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        busy = gen.in_flight
        if name in ("llamacpp", "openai") and not busy:
            busy = busy_slots(gen.base_url)
        elif name == "vllm" and not busy:
            metrics = httpx.get(f"{gen.base_url}/metrics", timeout=5).text
            busy = sum(float(ln.rsplit(" ", 1)[1]) for ln in metrics.splitlines()
                       if ln.startswith("vllm:num_requests_running"))
        if not busy:
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"{name}: still generating {within_s:g}s after the request was stopped")


def test_grounded_answer_json_and_stream(engine, serve, answerer, client_for):
    name, gen = engine
    with serve(create_app(gen, answerer, ServeSettings())) as base:
        client = client_for(base)
        resp = client.chat.completions.create(model="m", messages=FUNDS_Q, max_tokens=16)
        chunks = list(client.chat.completions.create(model="m", messages=FUNDS_Q, max_tokens=16, stream=True))
    content = resp.choices[0].message.content
    assert 0 < resp.usage.completion_tokens <= 16 and resp.usage.prompt_tokens > 100  # the grounded prompt
    assert resp.choices[0].finish_reason in ("stop", "length")
    sources = resp.model_extra["sources"]
    cited = [s for s in sources if s["cited"]]
    assert sources[0]["id"].startswith("gb.funds") and cited
    assert all(f"[{s['index']}]" in content for s in cited) and "**Sources**" in content
    assert resp.model_extra["gate"]["enabled"] is True
    # Whatever the model wrote, what is served states no figure the knowledge base contradicts.
    body = content.split("**Sources**")[0]
    assert answerer.auditor.audit_answer(body, FUNDS_Q[0]["content"]).contradicted == []
    # Streaming: deltas, then a last chunk with the finish reason, the sources and the gated answer.
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason in ("stop", "length")
    assert last.model_extra["sources"] and "**Sources**" in last.model_extra["gate"]["content"]
    assert "**Sources**" in streamed and len(streamed.split("**Sources**")[0].split()) >= 2


def test_gate_corrects_a_wrong_figure_in_the_engines_stream(engine, serve, answerer, client_for):
    name, gen = engine
    planted = Through(gen, WRONG + " ")
    with serve(create_app(planted, answerer, ServeSettings(answer_mode="generate"))) as base:
        client = client_for(base)
        resp = client.chat.completions.create(model="m", messages=FUNDS_Q, max_tokens=12)
        chunks = list(client.chat.completions.create(model="m", messages=FUNDS_Q, max_tokens=12, stream=True))
    assert planted.calls == 2 and resp.usage.completion_tokens > 0  # the engine really answered after it
    content = resp.choices[0].message.content
    fixed = next(c for c in resp.model_extra["gate"]["changes"] if c["action"] == "corrected")
    assert fixed["claim"] == "£1,900 per month" and fixed["fact_id"] == "gb.funds.monthly"
    assert "1,900" not in content.split("> **Fact check:**")[0]
    assert f"{fixed['replacement']} [{fixed['citation']}]" in content
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed.startswith(WRONG)  # the raw text went out first; the note after it names the fix
    note = streamed[len(WRONG):]
    assert "Fact check" in note and "£1,900 per month" in note and "1,483" in note
    assert "1,900" not in chunks[-1].model_extra["gate"]["content"].split("> **Fact check:**")[0]


def test_answer_modes_on_the_engine(engine, serve, answerer, client_for):
    name, gen = engine
    counted = Through(gen)
    with serve(create_app(counted, answerer, ServeSettings())) as base:
        client = client_for(base)
        auto = client.chat.completions.create(model="m", messages=WORK_Q, max_tokens=16)
        assert counted.calls == 1
        composed = client.chat.completions.create(model="m", messages=WORK_Q, extra_body={"answer_mode": "compose"})
        outside = client.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "How do I get admission to a public university in Bangladesh?"}])
    # auto: the engine's answer or the composed floor; either way no loop, no foreign URL, no unmarked name.
    served = auto.choices[0].message.content
    a = assess(served, WORK_Q[0]["content"], answerer.kb)
    assert auto.model_extra["gate"]["mode"] in ("generate", "compose") and served.strip()
    assert not a.looping and a.foreign_urls == [] and a.unverified_entities == []
    # compose and an out-of-scope question in auto never ask the engine.
    assert counted.calls == 1
    assert composed.model_extra["gate"]["mode"] == "compose" and "20 hours a week" in composed.choices[0].message.content
    assert outside.model_extra["gate"]["mode"] == "out_of_scope" and outside.model_extra["sources"] == []


def test_loop_stop_and_a_client_leaving_free_the_engine(engine, serve, answerer):
    name, gen = engine
    looping = Through(gen, LOOP)
    turn = answerer.prepare(WORK_Q, mode="generate")

    raw, last = answer_turn(looping, turn, max_tokens=600)
    assert turn.loop_stopped and last.finish_reason == "stop" and len(raw) < len(LOOP)
    final = answerer.finish(turn, raw)
    assert final.content.count("Check the official website for the latest visa rules.") == 1
    # A client that reads the first chunks and hangs up: the engine stops working for it.
    with serve(create_app(gen, answerer, ServeSettings())) as base:
        with httpx.Client(timeout=60) as c:
            body = {"messages": WORK_Q, "max_tokens": 600, "stream": True, "answer_mode": "generate"}
            with c.stream("POST", f"{base}/v1/chat/completions", json=body) as resp:
                assert resp.status_code == 200
                for i, _ in enumerate(resp.iter_lines()):
                    if i >= 3:
                        break
        wait_idle(gen, name)


def test_limits_on_the_engine(engine, serve, answerer, http):
    name, gen = engine
    with serve(create_app(gen, answerer, ServeSettings())) as base:
        # Past the context window (SmolLM2: 8,192 tokens; our llama.cpp slots: 2,048): 400, not a crash.
        long = {"messages": [{"role": "user", "content": "visa " * 9000}], "max_tokens": 8}
        r = http.post(f"{base}/v1/chat/completions", json=long)
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    with serve(create_app(gen, answerer, ServeSettings(request_timeout_s=0.05))) as base:
        r = http.post(f"{base}/v1/chat/completions", json={"messages": FUNDS_Q, "max_tokens": 400})
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        wait_idle(gen, name)  # the deadline stopped the engine too, not only our answer
