"""``sagpt serve`` and ``sagpt chat``. Heavy imports (torch, transformers, FastAPI) happen inside the
commands so that ``sagpt --help`` stays fast."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer

from .settings import ServeSettings

# The one default answer length (serve's default for requests that name none, and chat's).
DEFAULT_MAX_TOKENS = ServeSettings.default_max_tokens


ENGINES = ("hf", "llamacpp", "openai", "vllm")
ENGINE_HELP = ("'hf' (transformers, CPU or GPU), 'llamacpp' (GGUF through llama.cpp: fast on CPU), "
               "'openai' (any OpenAI-compatible server at --upstream) or 'vllm' (vLLM in its own venv, started for you; "
               "GPU, or its CPU build).")


@dataclass
class EngineOptions:
    """Everything that picks and configures the text generator, shared by serve, chat and eval."""

    engine: str = "hf"
    model: str = "default"
    adapter: Optional[str] = None
    merged: Optional[str] = None
    dtype: str = "auto"
    quantization: Optional[str] = None
    parallel: int = 4                    # hf: batch size; llamacpp: server slots
    threads: Optional[int] = None
    ctx_per_slot: int = 4096
    upstream: Optional[str] = None
    upstream_model: Optional[str] = None
    upstream_key_env: Optional[str] = None
    vllm_port: int = 8001
    vllm_args: list[str] = field(default_factory=list)
    vllm_bin: Optional[str] = None

    def check(self, kb: Optional[str] = None) -> None:
        """Cheap checks before anything heavy loads, so a typo fails in a second, not after the model loads."""
        from ..config import ConfigError
        from ..models import ModelLoadError

        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; use one of {', '.join(ENGINES)}")
        if self.engine == "openai":
            if not self.upstream:
                raise ConfigError("--engine openai needs --upstream URL (e.g. http://127.0.0.1:11434/v1 for Ollama)")
            from .openai_engine import api_key_from_env, normalize_base_url

            normalize_base_url(self.upstream)
            api_key_from_env(self.upstream_key_env)
        elif self.upstream:
            raise ConfigError(f"--upstream is for --engine openai (this is --engine {self.engine})")
        if self.engine == "vllm":
            from .vllm_engine import vllm_python

            vllm_python(self.vllm_bin)
        if self.engine == "llamacpp":
            from .llamacpp_engine import require_xllamacpp

            require_xllamacpp()
        adapter_is_gguf = self.engine == "llamacpp" and str(self.adapter or "").lower().endswith(".gguf")
        if self.adapter and not adapter_is_gguf and not (Path(self.adapter) / "adapter_config.json").exists():
            raise ModelLoadError(f"{self.adapter}: not a PEFT adapter directory (no adapter_config.json)")
        if self.adapter and adapter_is_gguf and not Path(self.adapter).exists():
            raise ModelLoadError(f"{self.adapter}: GGUF LoRA file not found")
        if self.merged and not (Path(self.merged) / "config.json").exists():
            raise ModelLoadError(f"{self.merged}: not a merged model directory (no config.json)")
        if kb is not None:
            from ..kb.store import kb_files

            kb_files(kb)

    def build(self):
        """The generator (not started: the app or the chat loop starts and stops it)."""
        if self.engine == "hf":
            from .hf_engine import load_hf_generator

            return load_hf_generator(self.model, adapter=self.adapter, merged=self.merged, dtype=self.dtype,
                                     quantization=self.quantization, max_batch=self.parallel, threads=self.threads)
        if self.engine == "llamacpp":
            from .llamacpp_engine import load_llamacpp_generator

            return load_llamacpp_generator(self.model, adapter=self.adapter, merged=self.merged,
                                           parallel=self.parallel, ctx_per_slot=self.ctx_per_slot,
                                           threads=self.threads)
        if self.engine == "openai":
            from .openai_engine import OpenAICompatGenerator, api_key_from_env

            return OpenAICompatGenerator(self.upstream, self.upstream_model,
                                         api_key=api_key_from_env(self.upstream_key_env))
        from .. import models
        from ..utils import cache_dir
        from .vllm_engine import (ADAPTER_NAME, OpenAICompatGenerator, VLLMProcess, cuda_available, vllm_command,
                                  vllm_python)

        path = models.resolve(self.merged or self.model)
        cpu = not cuda_available()
        cmd = vllm_command(str(path), adapter=None if self.merged else self.adapter, port=self.vllm_port,
                           dtype=self.dtype, extra_args=self.vllm_args, python=vllm_python(self.vllm_bin),
                           cpu=cpu)
        base = f"http://127.0.0.1:{self.vllm_port}"
        upstream = ADAPTER_NAME if self.adapter and not self.merged else "base"
        name = (models.DEFAULT_NAME if self.model == models.DEFAULT_MODEL else self.model) + (
            f"+{ADAPTER_NAME}" if upstream != "base" else "")
        proc = VLLMProcess(cmd, base, cpu=cpu, log_path=cache_dir() / "logs" / f"vllm-{self.vllm_port}.log")
        return OpenAICompatGenerator(base, upstream, model_name=name, process=proc,
                                     repetition_field="repetition_penalty")


def _answerer(rag: bool, gate: bool, kb: Optional[str], top_k: int, mode: str = "auto"):
    from .answer import MODES, Answerer

    if mode not in MODES:
        raise typer.BadParameter(f"use one of {', '.join(MODES)}", param_hint="--answer-mode")
    if not rag:
        return Answerer(None, None, top_k, mode="generate")
    return Answerer.from_kb(kb, top_k=top_k, gate=gate, mode=mode)


def _log_db(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    from ..review.cli import resolve_db

    return resolve_db(value)


def _engine_options(engine: str, model: str, adapter: Optional[str], merged: Optional[str], dtype: str,
                    parallel: int, threads: Optional[int], ctx_per_slot: int, upstream: Optional[str],
                    upstream_model: Optional[str], upstream_key_env: Optional[str], quantization: Optional[str] = None,
                    vllm_port: int = 8001, vllm_args: Optional[list[str]] = None,
                    vllm_bin: Optional[str] = None) -> EngineOptions:
    return EngineOptions(engine=engine, model=model, adapter=adapter, merged=merged, dtype=dtype,
                         quantization=quantization, parallel=parallel, threads=threads, ctx_per_slot=ctx_per_slot,
                         upstream=upstream, upstream_model=upstream_model, upstream_key_env=upstream_key_env,
                         vllm_port=vllm_port, vllm_args=list(vllm_args or []), vllm_bin=vllm_bin)


MODEL_HELP = "Base model: 'default', 'tiny-random', a local dir, .gguf or Hub id."
ADAPTER_HELP = "PEFT/LoRA adapter directory (e.g. runs/x/adapter); with --engine llamacpp also a GGUF LoRA file."
UPSTREAM_HELP = "--engine openai: the OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1 (Ollama)."
UPSTREAM_MODEL_HELP = "--engine openai: model name to ask the upstream for (default: the first it lists)."
UPSTREAM_KEY_HELP = "--engine openai: name of the environment variable holding the upstream's API key."
THREADS_HELP = ("CPU threads (default: hf all cores; llamacpp all cores but one for generation and all cores for "
                "prompts; a value given here sets both).")
MODE_HELP = ("generate (the model, gated), compose (cited answer built from the facts, no model) or auto "
             "(generate; serve the composed answer when the generated one fails the checks).")
CTX_HELP = "--engine llamacpp: context tokens per parallel slot (capped at the model's trained context)."


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: str = typer.Option("default", help=MODEL_HELP),
        adapter: Optional[str] = typer.Option(None, help=ADAPTER_HELP),
        merged: Optional[str] = typer.Option(None, help="A merged checkpoint directory (used instead of --model)."),
        host: str = typer.Option("127.0.0.1", help="Bind address (0.0.0.0 exposes the server on the network)."),
        port: int = typer.Option(8000),
        rag: bool = typer.Option(True, "--rag/--no-rag", help="Retrieval grounding with citations (and the gate)."),
        gate: bool = typer.Option(True, "--gate/--no-gate", help="Factuality gate on grounded answers."),
        kb: Optional[str] = typer.Option(None, help="Knowledge-base directory or file (default: the shipped one)."),
        top_k: int = typer.Option(4, "--top-k", min=1, max=20, help="Facts retrieved per question."),
        answer_mode: str = typer.Option("auto", "--answer-mode", help=MODE_HELP),
        api_key: Optional[str] = typer.Option(None, envvar="STUDYABROADGPT_API_KEY",
                                              help="Require 'Authorization: Bearer KEY' (or env STUDYABROADGPT_API_KEY)."),
        cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allowed browser origin (repeatable)."),
        max_concurrency: int = typer.Option(4, min=1, help="Requests generating at once (batched together; "
                                            "llama.cpp server slots)."),
        queue: int = typer.Option(16, min=0, help="Requests allowed to wait; beyond that clients get 429."),
        queue_timeout: float = typer.Option(30.0, help="Seconds a request may wait for a slot before a 503."),
        timeout: float = typer.Option(120.0, help="Per-request generation deadline in seconds."),
        max_tokens_cap: int = typer.Option(1024, min=1, help="Largest max_tokens a request may ask for."),
        max_body_kb: int = typer.Option(256, min=1, help="Largest request body in KiB."),
        engine: str = typer.Option("hf", help=ENGINE_HELP),
        upstream: Optional[str] = typer.Option(None, help=UPSTREAM_HELP),
        upstream_model: Optional[str] = typer.Option(None, help=UPSTREAM_MODEL_HELP),
        upstream_key_env: Optional[str] = typer.Option(None, help=UPSTREAM_KEY_HELP),
        threads: Optional[int] = typer.Option(None, min=1, help=THREADS_HELP),
        ctx_per_slot: int = typer.Option(4096, min=256, help=CTX_HELP),
        dtype: str = typer.Option("auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16."),
        quantization: Optional[str] = typer.Option(None, help="'nf4' to load the base in 4-bit (hf engine)."),
        vllm_port: int = typer.Option(8001, help="Loopback port for the vLLM subprocess."),
        vllm_arg: list[str] = typer.Option([], "--vllm-arg", help="Extra argument for vLLM's server (repeatable)."),
        vllm_bin: Optional[str] = typer.Option(None, "--vllm-bin", envvar="SAGPT_VLLM",
                                               help="vLLM's own virtualenv (or its python or vllm script; "
                                                    "env SAGPT_VLLM)."),
        log_db: Optional[str] = typer.Option(None, "--log-db", help="Log answered turns for adviser review at "
                                             "/review: 'sqlite' (runs/serve/conversations.db), a file, or a "
                                             "database URL (postgresql://user@host/db). Off by default."),
        log_retention_days: Optional[int] = typer.Option(None, "--log-retention-days", min=1,
                                                         help="Delete logged turns older than this."),
        adviser_key: Optional[str] = typer.Option(None, "--adviser-key", envvar="SAGPT_ADVISER_KEY",
                                                  help="Key for the /review page (env SAGPT_ADVISER_KEY); "
                                                       "without it the review page stays closed."),
    ) -> None:
        """Serve the assistant: OpenAI-compatible API, web chat at /, grounding with citations, factuality gate."""
        import uvicorn

        from .app import create_app
        from .logs import setup_json_logging

        opts = _engine_options(engine, model, adapter, merged, dtype, max_concurrency, threads, ctx_per_slot,
                               upstream, upstream_model, upstream_key_env, quantization, vllm_port, vllm_arg, vllm_bin)
        opts.check(kb)
        setup_json_logging()
        settings = ServeSettings(
            max_body_bytes=max_body_kb * 1024, max_tokens_cap=max_tokens_cap,
            default_max_tokens=min(DEFAULT_MAX_TOKENS, max_tokens_cap), max_concurrency=max_concurrency,
            max_queue=queue, queue_timeout_s=queue_timeout, request_timeout_s=timeout, api_key=api_key or None,
            cors_origins=list(cor for cor in cors_origin), rag=rag, gate=gate and rag, answer_mode=answer_mode,
            log_db=_log_db(log_db), log_retention_days=log_retention_days, adviser_key=adviser_key or None,
            adapter_id=adapter)
        answerer = _answerer(rag, gate, kb, top_k, answer_mode)
        generator = opts.build()
        where = f", upstream {generator.base_url}" if engine == "openai" else ""
        typer.echo(f"StudyAbroadGPT on http://{host}:{port}/  (model {generator.model_name}, engine {engine}{where}, "
                   f"grounding {'on' if rag else 'off'}, gate {'on' if settings.gate else 'off'}, answers {answer_mode})",
                   err=True)
        # log_config=None keeps uvicorn from replacing our JSON handlers; our middleware writes the access log.
        uvicorn.run(create_app(generator, answerer, settings), host=host, port=port, log_config=None,
                    access_log=False, timeout_graceful_shutdown=10)

    @app.command("chat")
    def chat(
        model: str = typer.Option("default", help=MODEL_HELP),
        adapter: Optional[str] = typer.Option(None, help=ADAPTER_HELP),
        merged: Optional[str] = typer.Option(None, help="A merged checkpoint directory (used instead of --model)."),
        rag: bool = typer.Option(True, "--rag/--no-rag", help="Retrieval grounding with citations (and the gate)."),
        gate: bool = typer.Option(True, "--gate/--no-gate", help="Factuality gate on grounded answers."),
        kb: Optional[str] = typer.Option(None, help="Knowledge-base directory or file (default: the shipped one)."),
        top_k: int = typer.Option(4, "--top-k", min=1, max=20),
        answer_mode: str = typer.Option("auto", "--answer-mode", help=MODE_HELP),
        max_tokens: int = typer.Option(DEFAULT_MAX_TOKENS, min=1, max=4096),
        temperature: float = typer.Option(0.0, min=0.0, max=2.0),
        engine: str = typer.Option("hf", help=ENGINE_HELP.replace(", started for you", "")),
        upstream: Optional[str] = typer.Option(None, help=UPSTREAM_HELP),
        upstream_model: Optional[str] = typer.Option(None, help=UPSTREAM_MODEL_HELP),
        upstream_key_env: Optional[str] = typer.Option(None, help=UPSTREAM_KEY_HELP),
        threads: Optional[int] = typer.Option(None, min=1, help=THREADS_HELP),
        ctx_per_slot: int = typer.Option(4096, min=256, help=CTX_HELP),
        dtype: str = typer.Option("auto"),
    ) -> None:
        """Chat in the terminal with the same grounding and factuality gate as the server."""
        from .chat import run_chat
        from .generation import GenParams

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        opts = _engine_options(engine, model, adapter, merged, dtype, 1, threads, ctx_per_slot, upstream,
                               upstream_model, upstream_key_env)
        opts.check(kb)
        answerer = _answerer(rag, gate, kb, top_k, answer_mode)
        generator = opts.build()
        run_chat(generator, answerer, GenParams(max_tokens=max_tokens, temperature=temperature), rag=rag,
                 gate=gate and rag)
