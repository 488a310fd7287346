"""``sagpt serve`` as a real process: it starts, answers the openai client, logs JSON lines, and refuses
bad options with one clean line (exit 2) instead of a traceback."""
from __future__ import annotations

import json
import re
import os
import subprocess

import httpx
import pytest

from ..conftest import SAGPT, sagpt_serve


def test_serve_command_end_to_end(tmp_path, client_for):
    env = {**os.environ, "STUDYABROADGPT_API_KEY": "k3y"}
    with sagpt_serve(tmp_path / "server.log", "--model", "tiny-random", "--no-rag", "--max-tokens-cap", "64",
                     env=env, timeout=120) as base:
        client = client_for(base, api_key="k3y")
        resp = client.chat.completions.create(model="tiny-random", max_tokens=4,
                                              messages=[{"role": "user", "content": "Hello?"}])
        assert resp.usage.completion_tokens <= 4
        assert httpx.post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]},
                          headers={"Authorization": "Bearer nope"}).status_code == 401
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
