"""``sagpt serve`` and ``sagpt chat``. Heavy imports (torch, transformers, FastAPI) happen inside the
commands so that ``sagpt --help`` stays fast."""
from __future__ import annotations

import os
from typing import Optional

import typer


def _build_generator(engine: str, model: str, adapter: Optional[str], merged: Optional[str], dtype: str,
                     quantization: Optional[str], max_batch: int, vllm_port: int, vllm_args: list[str]):
    if engine == "hf":
        from .hf_engine import load_hf_generator

        return load_hf_generator(model, adapter=adapter, merged=merged, dtype=dtype, quantization=quantization,
                                 max_batch=max_batch)
    if engine == "vllm":
        from .. import models
        from .vllm_engine import ADAPTER_NAME, OpenAICompatGenerator, VLLMProcess, vllm_command, vllm_executable

        path = models.resolve(merged or model)
        cmd = vllm_command(path, adapter=None if merged else adapter, port=vllm_port, dtype=dtype,
                           extra_args=vllm_args, executable=vllm_executable())
        base = f"http://127.0.0.1:{vllm_port}"
        upstream = ADAPTER_NAME if adapter and not merged else "base"
        name = (models.DEFAULT_NAME if model == models.DEFAULT_MODEL else model) + (f"+{ADAPTER_NAME}"
                                                                                    if upstream != "base" else "")
        return OpenAICompatGenerator(base, upstream, model_name=name, process=VLLMProcess(cmd, base))
    from ..config import ConfigError

    raise ConfigError(f"unknown engine {engine!r}; use 'hf' or 'vllm'")


def _check_options(engine: str, adapter: Optional[str], merged: Optional[str], kb: Optional[str]) -> None:
    """Cheap checks before anything heavy loads, so a typo fails in a second, not after the model loads."""
    from pathlib import Path

    from ..config import ConfigError
    from ..models import ModelLoadError

    if engine not in ("hf", "vllm"):
        raise ConfigError(f"unknown engine {engine!r}; use 'hf' or 'vllm'")
    if engine == "vllm":
        from .vllm_engine import vllm_executable

        vllm_executable()
    if adapter and not (Path(adapter) / "adapter_config.json").exists():
        raise ModelLoadError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
    if merged and not (Path(merged) / "config.json").exists():
        raise ModelLoadError(f"{merged}: not a merged model directory (no config.json)")
    if kb is not None:
        from ..kb.store import kb_files

        kb_files(kb)


def _log_db(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    from ..review.cli import resolve_db

    return resolve_db(value)


def _answerer(rag: bool, gate: bool, kb: Optional[str], top_k: int, mode: str = "auto"):
    from .answer import MODES, Answerer

    if mode not in MODES:
        raise typer.BadParameter(f"use one of {', '.join(MODES)}", param_hint="--answer-mode")
    if not rag:
        return Answerer(None, None, top_k, mode="generate")
    return Answerer.from_kb(kb, top_k=top_k, gate=gate, mode=mode)


_MODE_HELP = ("generate (the model, gated), compose (cited answer built from the facts, no model) or auto "
              "(generate; serve the composed answer when the generated one fails the checks).")


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: str = typer.Option("default", help="Base model: 'default', 'tiny-random', a local dir, .gguf or Hub id."),
        adapter: Optional[str] = typer.Option(None, help="PEFT/LoRA adapter directory (e.g. runs/x/adapter)."),
        merged: Optional[str] = typer.Option(None, help="A merged checkpoint directory (used instead of --model)."),
        host: str = typer.Option("127.0.0.1", help="Bind address (0.0.0.0 exposes the server on the network)."),
        port: int = typer.Option(8000),
        rag: bool = typer.Option(True, "--rag/--no-rag", help="Retrieval grounding with citations (and the gate)."),
        gate: bool = typer.Option(True, "--gate/--no-gate", help="Factuality gate on grounded answers."),
        kb: Optional[str] = typer.Option(None, help="Knowledge-base directory or file (default: the shipped one)."),
        top_k: int = typer.Option(4, "--top-k", min=1, max=20, help="Facts retrieved per question."),
        api_key: Optional[str] = typer.Option(None, envvar="STUDYABROADGPT_API_KEY",
                                              help="Require 'Authorization: Bearer KEY' (or env STUDYABROADGPT_API_KEY)."),
        cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allowed browser origin (repeatable)."),
        max_concurrency: int = typer.Option(4, min=1, help="Requests generating at once (batched together)."),
        queue: int = typer.Option(16, min=0, help="Requests allowed to wait; beyond that clients get 429."),
        queue_timeout: float = typer.Option(30.0, help="Seconds a request may wait for a slot before a 503."),
        timeout: float = typer.Option(120.0, help="Per-request generation deadline in seconds."),
        max_tokens_cap: int = typer.Option(1024, min=1, help="Largest max_tokens a request may ask for."),
        max_body_kb: int = typer.Option(256, min=1, help="Largest request body in KiB."),
        engine: str = typer.Option("hf", help="'hf' (transformers, CPU or GPU) or 'vllm' (GPU, proxied)."),
        dtype: str = typer.Option("auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16."),
        quantization: Optional[str] = typer.Option(None, help="'nf4' to load the base in 4-bit (hf engine)."),
        vllm_port: int = typer.Option(8001, help="Loopback port for the vLLM subprocess."),
        vllm_arg: list[str] = typer.Option([], "--vllm-arg", help="Extra argument passed to `vllm serve` (repeatable)."),
        answer_mode: str = typer.Option("auto", "--answer-mode", help=_MODE_HELP),
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
        from .settings import ServeSettings

        _check_options(engine, adapter, merged, kb)
        setup_json_logging()
        settings = ServeSettings(
            max_body_bytes=max_body_kb * 1024, max_tokens_cap=max_tokens_cap,
            default_max_tokens=min(384, max_tokens_cap), max_concurrency=max_concurrency, max_queue=queue,
            queue_timeout_s=queue_timeout, request_timeout_s=timeout, api_key=api_key or None,
            cors_origins=list(cor for cor in cors_origin), rag=rag, gate=gate and rag, answer_mode=answer_mode,
            log_db=_log_db(log_db), log_retention_days=log_retention_days, adviser_key=adviser_key or None,
            adapter_id=adapter)
        answerer = _answerer(rag, gate, kb, top_k, answer_mode)
        generator = _build_generator(engine, model, adapter, merged, dtype, quantization, max_concurrency,
                                     vllm_port, vllm_arg)
        typer.echo(f"StudyAbroadGPT on http://{host}:{port}/  (model {generator.model_name}, engine {engine}, "
                   f"grounding {'on' if rag else 'off'}, gate {'on' if settings.gate else 'off'}, answers {answer_mode})",
                   err=True)
        # log_config=None keeps uvicorn from replacing our JSON handlers; our middleware writes the access log.
        uvicorn.run(create_app(generator, answerer, settings), host=host, port=port, log_config=None,
                    access_log=False, timeout_graceful_shutdown=10)

    @app.command("chat")
    def chat(
        model: str = typer.Option("default", help="Base model: 'default', 'tiny-random', a local dir, .gguf or Hub id."),
        adapter: Optional[str] = typer.Option(None, help="PEFT/LoRA adapter directory."),
        merged: Optional[str] = typer.Option(None, help="A merged checkpoint directory (used instead of --model)."),
        rag: bool = typer.Option(True, "--rag/--no-rag", help="Retrieval grounding with citations (and the gate)."),
        gate: bool = typer.Option(True, "--gate/--no-gate", help="Factuality gate on grounded answers."),
        kb: Optional[str] = typer.Option(None, help="Knowledge-base directory or file (default: the shipped one)."),
        top_k: int = typer.Option(4, "--top-k", min=1, max=20),
        max_tokens: int = typer.Option(384, min=1, max=4096),
        temperature: float = typer.Option(0.0, min=0.0, max=2.0),
        dtype: str = typer.Option("auto"),
        answer_mode: str = typer.Option("auto", "--answer-mode", help=_MODE_HELP),
    ) -> None:
        """Chat in the terminal with the same grounding and factuality gate as the server."""
        from .chat import run_chat
        from .generation import GenParams
        from .hf_engine import load_hf_generator

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _check_options("hf", adapter, merged, kb)
        answerer = _answerer(rag, gate, kb, top_k, answer_mode)
        generator = load_hf_generator(model, adapter=adapter, merged=merged, dtype=dtype, max_batch=1)
        run_chat(generator, answerer, GenParams(max_tokens=max_tokens, temperature=temperature), rag=rag,
                 gate=gate and rag)
