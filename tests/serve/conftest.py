"""Run the real ASGI app under uvicorn in a thread on a free loopback port, so tests talk HTTP to it exactly
like a client would (openai client, httpx, a browser)."""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

import httpx
import pytest

from ..conftest import free_port


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """Serve ``app`` on loopback; yields the base URL and stops the server afterwards."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(15)


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
