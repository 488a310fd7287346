"""Fixtures of the serve tests: the loopback server (``running``, from the root conftest), openai and httpx
clients, the answerer over the shipped knowledge base, and one llama.cpp server shared by the session."""
from __future__ import annotations

import httpx
import pytest

from ..conftest import free_port, running  # noqa: F401  (re-exported: the serve tests import them from here)


@pytest.fixture(scope="session")
def serve():
    """``with serve(app) as base_url:`` runs the app on a free loopback port."""
    return running


@pytest.fixture(scope="session")
def answerer():
    """Grounding and gate over the shipped knowledge base."""
    from studyabroadgpt.serve.answer import Answerer

    return Answerer.from_kb()


@pytest.fixture()
def client_for():
    """``client_for(base_url, api_key=...)`` → an openai client pointed at the test server."""
    from openai import OpenAI

    made = []

    def make(base: str, api_key: str = "unused", **kw) -> OpenAI:
        c = OpenAI(base_url=f"{base}/v1", api_key=api_key, max_retries=0, timeout=60, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture()
def http():
    with httpx.Client(timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def llamacpp():
    """One real llama.cpp server for the whole session (the default model's own Q4_1 GGUF, 4 slots), shared
    by the llama.cpp engine tests and the answer-path tests that run on every engine: loading it once keeps
    the default suite from paying start-up per module. 1 thread: the tests must also pass on a busy shared
    machine, where spinning threads stall each other."""
    import asyncio

    from studyabroadgpt.serve.llamacpp_engine import load_llamacpp_generator

    gen = load_llamacpp_generator("default", parallel=4, ctx_per_slot=2048, threads=1)
    asyncio.run(gen.start())
    yield gen
    asyncio.run(gen.close())
    assert not gen.process.running()


@pytest.fixture()
def generated_rule_answers(monkeypatch):
    """Serve the generated answer to a rule question in auto (``answer.COMPOSE_POLICY_RULES`` off), for tests of
    what the gate, the citations and the caveat do to generated text: with the rule on, auto answers such a
    question from the facts and the generated text they check is not what is served."""
    from studyabroadgpt.serve import answer as answer_mod

    monkeypatch.setattr(answer_mod, "COMPOSE_POLICY_RULES", False)
