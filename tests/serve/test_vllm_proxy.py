"""``--engine vllm``: the exact ``vllm serve`` command line, and the proxy (grounding + gate in front of an
OpenAI-compatible upstream), tested against a fake upstream on loopback — in-thread and as a subprocess."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from studyabroadgpt.serve.app import create_app
from studyabroadgpt.serve.settings import ServeSettings
from studyabroadgpt.serve.vllm_engine import (ADAPTER_NAME, OpenAICompatGenerator, VLLMProcess, adapter_rank,
                                              vllm_command, vllm_python)

from .serve_fake_upstream import make_upstream  # noqa: E402
from .conftest import free_port  # noqa: E402

# Checks what is done to generated text: auto would answer these rule questions from the facts.
pytestmark = pytest.mark.usefixtures("generated_rule_answers")

FUNDS_Q = [{"role": "user", "content": "How much money do I need for a UK student visa in London?"}]
WRONG = "In London you need £1,900 per month for up to 9 months."


def _adapter(tmp_path: Path, r: int) -> Path:
    d = tmp_path / f"adapter-r{r}"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": r, "lora_alpha": 2 * r, "peft_type": "LORA"}))
    return d


def test_vllm_command_line(tmp_path):
    adapter = _adapter(tmp_path, 16)
    cmd = vllm_command("/models/smollm2", adapter=str(adapter), port=8101, dtype="bfloat16",
                       extra_args=["--gpu-memory-utilization", "0.85"], python="/venv/bin/python")
    assert cmd == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/models/smollm2", "--host", "127.0.0.1", "--port", "8101",
                   "--served-model-name", "base", "--dtype", "bfloat16",
                   "--enable-lora", "--lora-modules", f"{ADAPTER_NAME}={adapter.resolve()}",
                   "--max-lora-rank", "16", "--gpu-memory-utilization", "0.85"]
    # vLLM only accepts certain max ranks: an r=24 adapter needs --max-lora-rank 32.
    assert vllm_command("m", adapter=str(_adapter(tmp_path, 24)), port=1)[-1] == "32"
    assert "--enable-lora" not in vllm_command("m", adapter=None, port=1)
    # vLLM's CPU build: fp32 for auto (bf16 is emulated on AVX2-only CPUs) and eager mode.
    cpu = vllm_command("m", adapter=None, port=1, cpu=True)
    assert cpu[cpu.index("--dtype") + 1] == "float32" and "--enforce-eager" in cpu
    assert VLLMProcess(cpu, "http://127.0.0.1:1", cpu=True).env["VLLM_CPU_KVCACHE_SPACE"]
    from studyabroadgpt.models import ModelLoadError

    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        adapter_rank(tmp_path)


def test_vllm_python_from_a_venv_its_python_its_script_or_the_environment(tmp_path, monkeypatch):
    """vLLM lives in its own venv: --vllm-bin / SAGPT_VLLM may name the venv, its python or its vllm script
    (whose #! line names the interpreter: vllm-cpu's script itself cannot start the server)."""
    from studyabroadgpt.models import ModelLoadError

    bin_dir = tmp_path / "vllm-venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text("#!/bin/sh\n")
    script = bin_dir / "vllm"
    script.write_text(f"#!{python}\nimport sys\n")
    for f in (python, script):
        f.chmod(0o755)
    assert vllm_python(str(bin_dir.parent)) == vllm_python(str(script)) == vllm_python(str(python)) == str(python)
    monkeypatch.setenv("SAGPT_VLLM", str(bin_dir.parent))
    assert vllm_python() == str(python)
    with pytest.raises(ModelLoadError, match="no vLLM virtualenv"):
        vllm_python(str(tmp_path / "missing"))
    script.write_text("echo not a console script\n")
    with pytest.raises(ModelLoadError, match="#! line"):
        vllm_python(str(script))


def test_proxy_grounds_and_gates_the_upstream_answer(serve, answerer, client_for):
    upstream = make_upstream(WRONG)
    with serve(upstream) as up:
        gen = OpenAICompatGenerator(up, ADAPTER_NAME, model_name="smollm2+adapter")
        with serve(create_app(gen, answerer, ServeSettings())) as base:
            client = client_for(base)
            resp = client.chat.completions.create(model="smollm2+adapter", messages=FUNDS_Q, max_tokens=200)
            chunks = list(client.chat.completions.create(model="smollm2+adapter", messages=FUNDS_Q, stream=True))
    sent = upstream.state.requests[0]
    assert sent["model"] == ADAPTER_NAME and sent["max_tokens"] == 200 and sent["stream"] is True
    assert sent["messages"][0]["role"] == "system" and "£1,483 per month" in sent["messages"][0]["content"]
    content = resp.choices[0].message.content
    assert "GBP 1,483 per month [1]" in content and resp.usage.completion_tokens == len(WRONG.split())
    assert resp.model_extra["gate"]["changed"] and resp.model_extra["sources"][0]["id"] == "gb.funds.monthly"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    # The streamed raw text cannot be taken back: the final chunk's fact-check note names the wrong figure and
    # the official one.
    note = streamed[len(WRONG):]
    assert streamed.startswith(WRONG) and "Fact check" in note and "£1,900 per month" in note
    assert "GBP 1,483 per month" in note


def test_proxy_upstream_errors_are_clean(serve, answerer, http):
    with serve(make_upstream(WRONG)) as up:
        gen = OpenAICompatGenerator(up, "base")
        with serve(create_app(gen, answerer, ServeSettings())) as base:
            r = http.post(f"{base}/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "TOO_LONG question"}]})
            assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    dead = OpenAICompatGenerator(f"http://127.0.0.1:{free_port()}", "base")
    with serve(create_app(dead, answerer, ServeSettings())) as base:
        r = http.post(f"{base}/v1/chat/completions", json={"messages": FUNDS_Q})
        assert r.status_code == 502 and r.json()["error"]["code"] == "backend_error"
        assert "Traceback" not in r.text


def test_upstream_subprocess_is_started_and_stopped(serve, answerer, client_for):
    port = free_port()
    script = Path(__file__).with_name("serve_fake_upstream.py")
    proc = VLLMProcess([sys.executable, str(script), "--port", str(port)], f"http://127.0.0.1:{port}",
                       startup_timeout_s=60)
    gen = OpenAICompatGenerator(f"http://127.0.0.1:{port}", "base", process=proc)
    with serve(create_app(gen, answerer, ServeSettings())) as base:
        assert proc.proc is not None and proc.proc.poll() is None  # started with the app
        resp = client_for(base).chat.completions.create(model="base", messages=FUNDS_Q)
        assert "1,483" in resp.choices[0].message.content
    assert proc.proc.poll() is not None  # stopped with the app
    bad = VLLMProcess([sys.executable, "-c", "raise SystemExit(3)"], "http://127.0.0.1:9", startup_timeout_s=30)
    from studyabroadgpt.serve.generation import GenerationError

    with pytest.raises(GenerationError, match="exited with code 3"):
        bad.start()
