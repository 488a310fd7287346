"""GPU deployments: vLLM's OpenAI server as a subprocess, with our grounding and gate in front of it.

vLLM does continuous batching and paged attention far better than anything we would write, so
``--engine vllm`` starts ``vllm serve`` with the LoRA adapter (``--enable-lora --lora-modules``) on a
loopback port and our server becomes a proxy: it retrieves facts, builds the grounded prompt, streams the
upstream answer through, and runs the factuality gate on it. ``OpenAICompatGenerator`` works with any
OpenAI-compatible upstream (vLLM, llama.cpp's server, TGI), which is also how the tests exercise it.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator

from .generation import GenerationError, GenParams, Piece, PromptTooLong

log = logging.getLogger("studyabroadgpt.serve")

ADAPTER_NAME = "studyabroadgpt"
_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's --max-lora-rank accepts


def vllm_executable() -> str:
    found = shutil.which("vllm") or shutil.which("vllm", path=str(Path(sys.executable).parent))
    if not found:
        from ..models import ModelLoadError

        raise ModelLoadError("--engine vllm needs vLLM on this machine (`pip install vllm`, CUDA GPU); "
                             "use --engine hf otherwise")
    return found


def adapter_rank(adapter: str | Path) -> int:
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.exists():
        from ..models import ModelLoadError

        raise ModelLoadError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
    return int(json.loads(cfg.read_text()).get("r", 16))


def vllm_command(model_path: str, *, adapter: str | None, port: int, host: str = "127.0.0.1",
                 served_name: str = "base", dtype: str = "auto", max_model_len: int | None = None,
                 extra_args: list[str] | None = None, executable: str = "vllm") -> list[str]:
    """The exact ``vllm serve`` command line. The adapter is served under ``ADAPTER_NAME``; requests that
    name it get the fine-tuned model, requests naming ``served_name`` get the base model."""
    cmd = [executable, "serve", model_path, "--host", host, "--port", str(port),
           "--served-model-name", served_name, "--dtype", dtype, "--disable-log-requests"]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    if adapter:
        rank = adapter_rank(adapter)
        max_rank = next((r for r in _LORA_RANKS if r >= rank), rank)
        cmd += ["--enable-lora", "--lora-modules", f"{ADAPTER_NAME}={Path(adapter).resolve()}",
                "--max-lora-rank", str(max_rank)]
    return cmd + list(extra_args or [])


class VLLMProcess:
    """Start ``vllm serve``, wait until its /health answers, stop it (whole process group) on close."""

    def __init__(self, cmd: list[str], base_url: str, startup_timeout_s: float = 900.0):
        self.cmd, self.base_url, self.startup_timeout_s = cmd, base_url, startup_timeout_s
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import httpx

        log.info("starting vLLM", extra={"event": "vllm_start", "cmd": self.cmd})
        self.proc = subprocess.Popen(self.cmd, start_new_session=True, env={**os.environ})
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GenerationError(f"vLLM exited with code {self.proc.returncode} during start-up "
                                      f"(command: {' '.join(self.cmd)})")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise GenerationError(f"vLLM did not become healthy within {self.startup_timeout_s:g}s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class OpenAICompatGenerator:
    """Generator that streams from an OpenAI-compatible ``/v1/chat/completions`` upstream."""

    def __init__(self, base_url: str, upstream_model: str, model_name: str | None = None,
                 api_key: str | None = None, process: VLLMProcess | None = None, connect_timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.upstream_model, self.model_name = upstream_model, model_name or upstream_model
        self.api_key, self.process, self.connect_timeout_s = api_key, process, connect_timeout_s
        self._client: Any = None

    async def start(self) -> None:
        import asyncio

        import httpx

        if self.process is not None:
            await asyncio.to_thread(self.process.start)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        # Many concurrent streams: the pool must not become the bottleneck in front of vLLM's batching.
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                         limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))

    async def close(self) -> None:
        import asyncio

        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.process is not None:
            await asyncio.to_thread(self.process.stop)

    async def stream(self, messages: list[dict[str, str]], params: GenParams) -> AsyncIterator[Piece]:
        import httpx

        if self._client is None:
            await self.start()
        body: dict[str, Any] = {"model": self.upstream_model, "messages": messages, "stream": True,
                                "max_tokens": params.max_tokens, "temperature": params.temperature,
                                "top_p": params.top_p, "stream_options": {"include_usage": True}}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.repetition_penalty and params.repetition_penalty != 1.0:
            body["repetition_penalty"] = params.repetition_penalty  # a vLLM sampling extra (no n-gram ban there)
        timeout = httpx.Timeout(params.timeout_s or 600, connect=self.connect_timeout_s)
        deadline = time.monotonic() + params.timeout_s if params.timeout_s else None
        finish, usage = None, {}
        try:
            async with self._client.stream("POST", "/v1/chat/completions", json=body, timeout=timeout) as resp:
                if resp.status_code != 200:
                    raise _upstream_error(resp.status_code, (await resp.aread()).decode("utf-8", "replace"))
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise GenerationError(f"upstream error: {chunk['error'].get('message', chunk['error'])}")
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices", []):
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            yield Piece(text)
                        finish = choice.get("finish_reason") or finish
                    if deadline is not None and time.monotonic() > deadline:
                        finish = "timeout"
                        break
        except httpx.TimeoutException:
            finish = "timeout"
        except httpx.HTTPError as exc:
            raise GenerationError(f"upstream {self.base_url} unreachable: {type(exc).__name__}") from None
        yield Piece("", finish or "stop", prompt_tokens=int(usage.get("prompt_tokens", 0)),
                    completion_tokens=int(usage.get("completion_tokens", 0)))


def _upstream_error(status: int, text: str) -> Exception:
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = text[:300]
    if status == 400 and ("context" in message.lower() or "maximum" in message.lower()):
        return PromptTooLong(message)
    return GenerationError(f"upstream returned {status}: {message}")
