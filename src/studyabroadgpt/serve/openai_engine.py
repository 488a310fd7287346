"""Grounding and the gate in front of any OpenAI-compatible chat server.

``--engine openai --upstream URL`` points the server at a model someone already runs (llama.cpp's
``llama-server``, Ollama, LM Studio, vLLM, a hosted endpoint): our server retrieves the facts, builds the
grounded prompt, streams the upstream's answer through and runs the factuality gate on it. The llama.cpp and
vLLM engines are the same generator with an upstream process we start and stop ourselves
(:class:`UpstreamProcess`).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any, AsyncIterator

from .generation import GenerationError, GenParams, Piece, PromptTooLong

log = logging.getLogger("studyabroadgpt.serve")


def normalize_base_url(url: str) -> str:
    """``http://host:port``, ``http://host:port/v1`` and ``https://host/api/v1/`` all name the same API: keep
    the part before ``/v1`` (requests go to ``{base}/v1/chat/completions``)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        from ..config import ConfigError

        raise ConfigError(f"--upstream {url!r}: give an http(s) URL such as http://127.0.0.1:11434/v1")
    return url[:-3] if url.endswith("/v1") else url


class UpstreamProcess:
    """Start an OpenAI-compatible server as a subprocess, wait until ``health_path`` answers 200, and stop the
    whole process group on close. Its output goes to ``log_path`` (or is discarded), so a crash can be
    reported with the server's own last lines instead of a bare exit code."""

    def __init__(self, cmd: list[str], base_url: str, startup_timeout_s: float = 900.0, name: str = "upstream",
                 health_path: str = "/health", log_path: str | Path | None = None,
                 env: dict[str, str] | None = None):
        self.cmd, self.base_url, self.startup_timeout_s = cmd, base_url.rstrip("/"), startup_timeout_s
        self.name, self.health_path = name, health_path
        self.log_path = Path(log_path) if log_path else None
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        import httpx

        log.info(f"starting {self.name}", extra={"event": "upstream_start", "cmd": self.cmd})
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = out = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, start_new_session=True, env={**os.environ, **(self.env or {})},
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GenerationError(f"{self.name} exited with code {self.proc.returncode} during start-up "
                                      f"(command: {' '.join(self.cmd)}){self._tail()}")
            try:
                if httpx.get(f"{self.base_url}{self.health_path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise GenerationError(f"{self.name} did not become healthy within {self.startup_timeout_s:g}s{self._tail()}")

    def _tail(self, n: int = 6) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()][-n:]
        return (f"; last lines of {self.log_path}: " + " | ".join(lines)) if lines else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


class OpenAICompatGenerator:
    """Generator that streams from an OpenAI-compatible ``/v1/chat/completions`` upstream.

    ``upstream_model=None`` asks the upstream's ``/v1/models`` at start and uses the first model it lists (a
    llama.cpp server or an Ollama with one model needs no name). ``extra_body`` is merged into every request
    (llama.cpp's per-request ``lora`` list, for instance).

    ``repetition_field`` names the upstream's own (non-OpenAI) field for ``GenParams.repetition_penalty``:
    ``repetition_penalty`` for vLLM, ``repeat_penalty`` for llama.cpp. For an arbitrary upstream it is None and
    only OpenAI's own fields are sent: the hosted OpenAI API answers 400 to fields it does not know.
    """

    def __init__(self, base_url: str, upstream_model: str | None, model_name: str | None = None,
                 api_key: str | None = None, process: UpstreamProcess | None = None,
                 connect_timeout_s: float = 10.0, extra_body: dict[str, Any] | None = None,
                 repetition_field: str | None = None):
        self.base_url = normalize_base_url(base_url)
        self.upstream_model = upstream_model
        self._model_name = model_name
        self.api_key, self.process, self.connect_timeout_s = api_key, process, connect_timeout_s
        self.extra_body = dict(extra_body or {})
        self.repetition_field = repetition_field
        self._clients: dict[int, Any] = {}
        self._users = 0
        self._open = 0  # upstream streams open now

    @property
    def in_flight(self) -> int:
        """Upstream requests still open. Closing one is what frees the upstream's slot (llama.cpp and vLLM stop
        decoding for a connection that went away), so 0 here means nothing is left generating for us."""
        return self._open

    @property
    def model_name(self) -> str:
        return self._model_name or self.upstream_model or "upstream"

    async def start(self) -> None:
        import asyncio

        # Reference-counted like the hf engine: several apps (tests, the benchmark) may share one upstream.
        self._users += 1
        if self.process is not None and not self.process.running():
            await asyncio.to_thread(self.process.start)
        if self.upstream_model is None:
            self.upstream_model = await self._first_model()

    @property
    def _client(self) -> Any:
        """One HTTP client per event loop: a pooled connection must not move between loops (each app under
        test or benchmark runs its own loop in its own thread)."""
        import asyncio

        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(id(loop))
        if client is None or client.is_closed:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            # Many concurrent streams: the pool must not become the bottleneck in front of the upstream's batching.
            client = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                       limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
            self._clients[id(loop)] = client
        return client

    async def _first_model(self) -> str:
        import httpx

        try:
            resp = await self._client.get("/v1/models", timeout=self.connect_timeout_s)
        except httpx.HTTPError as exc:
            raise GenerationError(f"upstream {self.base_url} unreachable: {type(exc).__name__}; "
                                  "is the server running?") from None
        if resp.status_code != 200:
            raise _upstream_error(resp.status_code, resp.text)
        models = [m.get("id") for m in resp.json().get("data", []) if m.get("id")]
        if not models:
            raise GenerationError(f"upstream {self.base_url}/v1/models lists no model; pass --upstream-model")
        return models[0]

    async def close(self) -> None:
        import asyncio

        self._users = max(0, self._users - 1)
        mine = self._clients.pop(id(asyncio.get_running_loop()), None)
        if mine is not None:
            await mine.aclose()
        if self._users:
            return
        self._clients.clear()  # clients of loops that have ended hold no live connections worth closing
        if self.process is not None:
            await asyncio.to_thread(self.process.stop)

    def request_body(self, messages: list[dict[str, str]], params: GenParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.upstream_model, "messages": messages, "stream": True,
                                "max_tokens": params.max_tokens, "temperature": params.temperature,
                                "top_p": params.top_p, "stream_options": {"include_usage": True},
                                **self.extra_body}
        if params.seed is not None:
            body["seed"] = params.seed
        penalty = getattr(params, "repetition_penalty", None)
        if self.repetition_field and penalty and penalty != 1.0:
            body[self.repetition_field] = penalty  # no n-gram ban upstream: the answer path's loop cutter remains
        return body

    async def stream(self, messages: list[dict[str, str]], params: GenParams) -> AsyncIterator[Piece]:
        import httpx

        if self.upstream_model is None:  # used without start(): ask the upstream which model it serves
            self.upstream_model = await self._first_model()
        body = self.request_body(messages, params)
        timeout = httpx.Timeout(params.timeout_s or 600, connect=self.connect_timeout_s)
        deadline = time.monotonic() + params.timeout_s if params.timeout_s else None
        finish, usage = None, {}
        self._open += 1
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
                        err = chunk["error"]
                        raise GenerationError(f"upstream error: {err.get('message', err) if isinstance(err, dict) else err}")
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices", []):
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            yield Piece(text)
                        finish = choice.get("finish_reason") or finish
                    if deadline is not None and time.monotonic() > deadline:
                        # Leaving the context closes the connection; llama.cpp and vLLM then free the slot.
                        finish = "timeout"
                        break
        except httpx.TimeoutException:
            finish = "timeout"
        except httpx.HTTPError as exc:
            raise GenerationError(f"upstream {self.base_url} unreachable: {type(exc).__name__}") from None
        finally:
            self._open -= 1
        yield Piece("", finish or "stop", prompt_tokens=int(usage.get("prompt_tokens", 0)),
                    completion_tokens=int(usage.get("completion_tokens", 0)))


def _upstream_error(status: int, text: str) -> Exception:
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = text[:300]
    low = message.lower()
    # vLLM: "maximum context length is N tokens"; llama.cpp: "exceeds the available context size".
    if status == 400 and ("context" in low or "maximum" in low):
        return PromptTooLong(message)
    if status in (401, 403):
        return GenerationError(f"upstream refused the API key ({status}): {message}")
    return GenerationError(f"upstream returned {status}: {message}")


def api_key_from_env(var: str | None) -> str | None:
    """The upstream's key from the environment variable the user named (never from a flag: flags end up in
    shell history and ``ps``)."""
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        from ..config import ConfigError

        raise ConfigError(f"--upstream-key-env {var}: the environment variable {var} is not set or empty")
    return value
