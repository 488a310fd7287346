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
import shutil
import sys
from pathlib import Path

from .openai_engine import OpenAICompatGenerator, UpstreamProcess

__all__ = ["ADAPTER_NAME", "OpenAICompatGenerator", "VLLMProcess", "adapter_rank", "vllm_command",
           "vllm_executable"]

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


class VLLMProcess(UpstreamProcess):
    """``vllm serve`` as a subprocess: started with the app, healthy when its /health answers, stopped (whole
    process group) on close. vLLM loads slowly (minutes on first start), hence the long start-up timeout."""

    def __init__(self, cmd: list[str], base_url: str, startup_timeout_s: float = 900.0,
                 log_path: str | Path | None = None):
        super().__init__(cmd, base_url, startup_timeout_s=startup_timeout_s, name="vLLM", log_path=log_path)
