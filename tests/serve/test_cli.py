"""``sagpt serve`` as a real process: it starts, answers the openai client, logs JSON lines, and refuses
bad options with one clean line (exit 2) instead of a traceback."""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import free_port  # noqa: E402

SAGPT = [sys.executable, "-m", "studyabroadgpt.cli"]


def test_serve_command_end_to_end(tmp_path, client_for):
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    env = {**os.environ, "STUDYABROADGPT_API_KEY": "k3y"}
    proc = subprocess.Popen([*SAGPT, "serve", "--model", "tiny-random", "--no-rag", "--port", str(port),
                             "--max-tokens-cap", "64"], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.5)
        client = client_for(base, api_key="k3y")
        resp = client.chat.completions.create(model="tiny-random", max_tokens=4,
                                              messages=[{"role": "user", "content": "Hello?"}])
        assert resp.usage.completion_tokens <= 4
        assert httpx.post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]},
                          headers={"Authorization": "Bearer nope"}).status_code == 401
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
    lines = [ln for ln in (tmp_path / "server.log").read_text().splitlines() if ln.startswith("{")]
    events = [json.loads(ln) for ln in lines]
    requests = [e for e in events if e.get("event") == "request" and e["path"] == "/v1/chat/completions"]
    assert {e["status"] for e in requests} >= {200, 401} and all("request_id" in e for e in requests)


@pytest.mark.parametrize("args, message", [
    (["--engine", "tgi"], "unknown engine 'tgi'"),
    (["--adapter", "/nonexistent/adapter"], "not a PEFT adapter directory"),
    (["--kb", "/nonexistent/kb"], "no such knowledge-base file"),
    (["--engine", "vllm"], "--engine vllm needs vLLM"),
    (["--engine", "openai"], "--engine openai needs --upstream URL"),
])
def test_serve_bad_options_are_one_clean_line(args, message):
    import shutil

    if args == ["--engine", "vllm"] and shutil.which("vllm"):
        pytest.skip("vLLM is installed here")
    r = subprocess.run([*SAGPT, "serve", "--model", "tiny-random", *args], capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("kwargs, message", [
    ({"engine": "openai", "upstream": "localhost:11434"}, "give an http(s) URL"),
    ({"engine": "openai", "upstream": "http://127.0.0.1:9/v1", "upstream_key_env": "SAGPT_NO_SUCH_VAR"},
     "SAGPT_NO_SUCH_VAR is not set"),
    ({"engine": "hf", "upstream": "http://127.0.0.1:9/v1"}, "--upstream is for --engine openai"),
    ({"engine": "llamacpp", "adapter": "/nonexistent/lora.gguf"}, "GGUF LoRA file not found"),
    ({"engine": "vllm", "vllm_bin": "/nonexistent/vllm-venv"}, "no vLLM virtualenv, python or vllm script there"),
])
def test_engine_options_are_checked_before_loading(kwargs, message):
    """The same checks, in process (each costs a CLI start-up otherwise)."""
    from studyabroadgpt.config import ConfigError
    from studyabroadgpt.models import ModelLoadError
    from studyabroadgpt.serve.cli import EngineOptions

    with pytest.raises((ConfigError, ModelLoadError), match=re.escape(message)):
        EngineOptions(**kwargs).check()


def test_engine_openai_key_comes_from_the_named_variable(monkeypatch):
    from studyabroadgpt.serve.cli import EngineOptions

    monkeypatch.setenv("SAGPT_TEST_UPSTREAM_KEY", "s3cret")
    opts = EngineOptions(engine="openai", upstream="https://api.example.org/v1", upstream_model="m",
                         upstream_key_env="SAGPT_TEST_UPSTREAM_KEY")
    opts.check()
    gen = opts.build()
    assert gen.api_key == "s3cret" and gen.base_url == "https://api.example.org" and gen.model_name == "m"
