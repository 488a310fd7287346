"""``--engine llamacpp``: the embedded SmolLM2 GGUF served by a real llama.cpp server process (xllamacpp),
behind our grounding and gate; ``--engine openai`` in front of that same real server.

One llama.cpp server for the session (``llamacpp`` in tests/serve/conftest.py, shared with the answer-path
tests on every engine); every request is short (max_tokens ≤ 24)
so the module stays well under a minute on 2 quiet cores.
"""
from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from studyabroadgpt.models import ModelLoadError, default_gguf_path
from studyabroadgpt.serve.app import create_app
from studyabroadgpt.serve.generation import GenParams
from studyabroadgpt.serve.llamacpp_engine import (GGUFModel, load_llamacpp_generator, resolve_gguf,
                                                  server_command)
from studyabroadgpt.serve.openai_engine import OpenAICompatGenerator, normalize_base_url
from studyabroadgpt.serve.settings import ServeSettings

from .engine_helpers import busy_slots, two_facts

FUNDS_Q = [{"role": "user", "content": "How much money do I need for a UK student visa in London?"}]


def test_resolve_gguf_maps_the_model_options(tmp_path, monkeypatch):
    monkeypatch.delenv("SAGPT_LLAMA_SERVER", raising=False)  # the xllamacpp command line, not a native binary
    default = resolve_gguf("default")  # the embedded Q4_1 requantised once to q8_0 (SERVED_TYPE), cached
    assert default.path.name.startswith(default_gguf_path().stem) and default.path.name.endswith("-Q8_0.gguf")
    assert resolve_gguf("default").path == default.path and default.lora is None
    from gguf import GGMLQuantizationType, GGUFReader

    types = {t.tensor_type for t in GGUFReader(str(default.path)).tensors if len(t.shape) == 2}
    assert types == {GGMLQuantizationType.Q8_0}
    assert default.name == "HuggingFaceTB/SmolLM2-135M-Instruct"
    own = tmp_path / "exported-q8_0.gguf"
    own.write_bytes(b"GGUF")
    assert resolve_gguf(str(own)).path == own.resolve()
    lora = tmp_path / "adapter.gguf"
    lora.write_bytes(b"GGUF")
    with_lora = resolve_gguf("default", adapter=str(lora))
    assert with_lora.lora == lora.resolve() and with_lora.name.endswith("+adapter")
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        resolve_gguf(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        resolve_gguf("default", adapter=str(tmp_path))
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_gguf("default", merged=str(tmp_path))
    cmd = server_command(GGUFModel(own, lora, "m"), port=9999, parallel=8, ctx_per_slot=2048, threads=2)
    assert cmd[1:3] == ["-m", "studyabroadgpt.serve.llamacpp_engine"]
    assert cmd[cmd.index("--parallel") + 1] == "8" and cmd[cmd.index("--lora") + 1] == str(lora)
    assert normalize_base_url("http://127.0.0.1:11434/v1/") == "http://127.0.0.1:11434"
    assert normalize_base_url("https://openrouter.ai/api/v1") == "https://openrouter.ai/api"


@pytest.fixture(scope="module")
def answerer(answerer):
    return two_facts(answerer)


@pytest.mark.integration
def test_llamacpp_grounded_answer_stream_and_json(llamacpp, serve, answerer, client_for):
    with serve(create_app(llamacpp, answerer, ServeSettings())) as base:
        client = client_for(base)
        resp = client.chat.completions.create(model=llamacpp.model_name, messages=FUNDS_Q, max_tokens=24)
        chunks = list(client.chat.completions.create(model=llamacpp.model_name, messages=FUNDS_Q,
                                                     max_tokens=24, stream=True))
        models = client.models.list().data
    assert models[0].id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    content = resp.choices[0].message.content
    assert 0 < resp.usage.completion_tokens <= 24 and resp.usage.prompt_tokens > 100  # the grounded prompt
    assert resp.choices[0].finish_reason in ("stop", "length")
    # Grounding and the gate ran on llama.cpp's text: the key fact is cited and listed under Sources.
    assert "**Sources**" in content and "[1]" in content
    assert resp.model_extra["sources"] and resp.model_extra["gate"]["enabled"] is True
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert "**Sources**" in streamed and chunks[-1].model_extra["gate"]["content"]
    # (No token-for-token comparison of the two: llama.cpp reuses the first request's cached prompt for the
    # second, and a differently batched prefill may change a greedy choice.)
    assert len(streamed.split("**Sources**")[0].split()) >= 3


@pytest.mark.integration
def test_llamacpp_serves_concurrent_requests_in_parallel_slots(llamacpp, serve, answerer):
    """Four concurrent requests are decoded together (llama.cpp's slots), not one after another."""
    busy_max = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal busy_max
        with httpx.Client(timeout=5) as c:
            while not done.is_set():
                try:
                    busy_max = max(busy_max, busy_slots(llamacpp.base_url, c))
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.05)

    settings = ServeSettings(max_concurrency=4)
    with serve(create_app(llamacpp, answerer, settings)) as base:
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        async def ask(i: int) -> int:
            async with httpx.AsyncClient(timeout=120) as c:
                r = await c.post(f"{base}/v1/chat/completions",
                                 json={"messages": [{"role": "user", "content": f"Question {i}: can I work on a "
                                                     "student visa in Canada?"}], "max_tokens": 24})
                return r.status_code

        async def all_four():
            return await asyncio.gather(*(ask(i) for i in range(4)))

        statuses = asyncio.run(all_four())
        done.set()
        watcher.join(5)
    assert statuses == [200] * 4
    assert busy_max >= 2, f"llama.cpp never had more than {busy_max} slot busy at once"


@pytest.mark.integration
def test_llamacpp_limits_map_to_openai_errors(llamacpp, serve, answerer, http):
    with serve(create_app(llamacpp, answerer, ServeSettings())) as base:
        long = {"messages": [{"role": "user", "content": "visa " * 3000}], "max_tokens": 8}
        r = http.post(f"{base}/v1/chat/completions", json=long)
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    # The per-request deadline: the generator stops, the app answers 504.
    with serve(create_app(llamacpp, answerer, ServeSettings(request_timeout_s=0.05))) as base:
        r = http.post(f"{base}/v1/chat/completions", json={"messages": FUNDS_Q, "max_tokens": 200})
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"


@pytest.mark.integration
def test_openai_engine_in_front_of_a_real_llamacpp_server(llamacpp, serve, answerer, client_for):
    """``--engine openai --upstream URL``: no model named, so it asks the upstream's /v1/models."""
    gen = OpenAICompatGenerator(f"{llamacpp.base_url}/v1", None)
    with serve(create_app(gen, answerer, ServeSettings())) as base:
        client = client_for(base)
        resp = client.chat.completions.create(model="x", messages=FUNDS_Q, max_tokens=16)
    assert gen.model_name == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "**Sources**" in resp.choices[0].message.content and resp.usage.completion_tokens > 0


def test_llamacpp_server_process_reports_a_bad_gguf(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    gen = load_llamacpp_generator(str(bad), threads=1)
    from studyabroadgpt.serve.generation import GenerationError

    with pytest.raises(GenerationError, match="exited with code"):
        asyncio.run(gen.start())
    assert not gen.process.running()


def test_params_reach_the_upstream_request():
    gen = OpenAICompatGenerator("http://127.0.0.1:1", "m", extra_body={"lora": [{"id": 0, "scale": 1.0}]})
    body = gen.request_body(FUNDS_Q, GenParams(max_tokens=7, temperature=0.5, top_p=0.9, seed=3))
    assert body["max_tokens"] == 7 and body["seed"] == 3 and body["lora"] == [{"id": 0, "scale": 1.0}]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.integration
def test_eval_generate_with_the_llamacpp_engine(tmp_path):
    import json

    from typer.testing import CliRunner

    from studyabroadgpt.cli import app

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": q}) + "\n" for i, q in
                               enumerate(["What is a student visa?", "Can I work while I study in Canada?"])))
    out = tmp_path / "eval"
    r = CliRunner().invoke(app, ["eval", "generate", "--engine", "llamacpp", "-p", str(prompts), "-o", str(out),
                                 "--max-new-tokens", "8"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(ln) for ln in (out / "outputs.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["q0", "q1"] and all(row["response"].strip() for row in rows)
    assert all(0 < row["new_tokens"] <= 8 for row in rows)
    gen = json.loads((out / "generation.json").read_text())
    assert list(gen) == [rows[0]["system"]] and gen[rows[0]["system"]]["n"] == 2


@pytest.mark.integration
def test_llamacpp_slots_start_with_the_grounding_prompt_cached(caplog):
    """Every slot is primed at start-up: a grounded question pinned to a slot no request has used yet reuses
    the system prompt's tokens from llama.cpp's prompt cache instead of prefilling them."""
    from studyabroadgpt.serve.grounding import grounded_messages
    from studyabroadgpt.serve.llamacpp_engine import llamacpp_process, prime_slots

    proc = llamacpp_process(resolve_gguf("default"), parallel=2, ctx_per_slot=1024, threads=1)
    proc.start()
    try:
        messages = grounded_messages(FUNDS_Q, [])
        for slot in (0, 1):
            body = {"messages": messages, "max_tokens": 1, "temperature": 0, "id_slot": slot, "cache_prompt": True}
            timings = httpx.post(f"{proc.base_url}/v1/chat/completions", json=body, timeout=120).json()["timings"]
            assert timings["cache_n"] >= 60, timings  # the system prompt is ~85 of the prompt's tokens
    finally:
        proc.stop()
    with caplog.at_level("WARNING", logger="studyabroadgpt.serve"):
        prime_slots("http://127.0.0.1:1", 2, timeout_s=2)  # nothing listening: a warning, not a failure
    assert "could not prime" in caplog.text


def test_native_llama_server_gets_the_same_settings(tmp_path, monkeypatch):
    from studyabroadgpt.models import default_gguf_path
    from studyabroadgpt.serve.llamacpp_engine import NATIVE_SERVER_ENV

    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(NATIVE_SERVER_ENV, str(binary))
    gguf = resolve_gguf("default")
    assert gguf.path == default_gguf_path().resolve()  # the native server serves the embedded Q4_1 as it ships
    cmd = server_command(gguf, port=9999, parallel=4, ctx_per_slot=1024, threads=1, extra=["--ubatch-size", "256"])
    assert cmd[0] == str(binary) and cmd[cmd.index("--model") + 1] == str(gguf.path)
    assert cmd[cmd.index("--ctx-size") + 1] == "4096"  # per slot × slots, as the xllamacpp server splits it
    assert cmd[cmd.index("--threads") + 1] == cmd[cmd.index("--threads-batch") + 1] == "1"
    assert cmd[cmd.index("--alias") + 1] == gguf.name and cmd[-2:] == ["--ubatch-size", "256"]
    monkeypatch.setenv(NATIVE_SERVER_ENV, str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="SAGPT_LLAMA_SERVER"):
        server_command(gguf, port=9999)
