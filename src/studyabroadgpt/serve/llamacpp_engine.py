"""Fast CPU serving with llama.cpp: a GGUF behind llama.cpp's own server, with our grounding and gate in front.

Why llama.cpp: on CPU it runs SmolLM2-135M several times faster than transformers (quantised matmuls, no
Python per token), and its server does continuous batching over parallel slots, so concurrent students are
served together instead of one by one.

How it is installed: ``xllamacpp`` (a dependency of this package) ships llama.cpp's C++ server as a prebuilt
wheel (34 MB, seconds to install). ``llama-cpp-python`` has no binary wheel and builds from source (~3.5 min on a
quiet 2-core machine, far longer on a busy one); its built-in server also handles one request at a time.

How it runs: ``python -m studyabroadgpt.serve.llamacpp_engine --model X.gguf --port P`` is a small llama.cpp
server process (xllamacpp's ``Server`` listening on loopback). ``--engine llamacpp`` starts it as a subprocess
and streams from it through :class:`~.openai_engine.OpenAICompatGenerator`, exactly as ``--engine openai``
streams from a server someone else runs. A separate process keeps a crash in native code from taking the API
down and lets us stop it cleanly with the app.

What it runs (:func:`resolve_gguf`): the default model's own GGUF, requantised once from Q4_1 to q8_0
(:data:`SERVED_TYPE`, measured below); any ``.gguf`` (e.g. what
``sagpt export gguf`` wrote); a merged HF checkpoint, converted once to GGUF; or base + PEFT adapter, merged and
converted once (cached under the cache dir by the adapter's fingerprint). A GGUF LoRA file given as
``--adapter x.gguf`` is applied by llama.cpp itself on top of the base GGUF.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .openai_engine import OpenAICompatGenerator, UpstreamProcess

log = logging.getLogger("studyabroadgpt.serve")

# llama.cpp's threads spin-wait between ops by default (poll=50). On a shared CPU that is ruinous: measured on
# this 2-core machine at load ~12, 48 tokens took 82 s with 2 polling threads and 5.5 s with 1 thread, poll 0
# (2 threads without polling did not finish in 150 s: every op waits for both threads to be scheduled).
DEFAULT_POLL = 0


def default_threads() -> int:
    """Generation threads: all cores but one, so the API process next to it keeps a core for retrieval, the
    gate and HTTP. On this 2-core machine that is 1, and a second thread buys nothing when quiet (Q4_1: 29.3 vs
    32.8 tokens/s; q8_0: 32.4 vs 32.9, server timings, 6 grounded prompts) while it is ruinous under load."""
    return max(1, (os.cpu_count() or 1) - 1)


def default_batch_threads() -> int:
    """Prompt-processing threads (``cpuparams_batch``; llama.cpp also uses them for a decode step that batches
    several slots): all cores. A grounded prompt is ~280 tokens, so prefill is a third of a 64-token answer's
    time at one client and most of it at 16. Measured quiet (load ~2, 801 prompt tokens): Q4_1 80 → 110 and
    q8_0 151 → 181 tokens/s from 1 to 2 threads. Under heavy load a second spinning thread can stall each op
    (see DEFAULT_POLL); pass ``--threads 1`` on a machine that is always busy (it sets both)."""
    return max(1, os.cpu_count() or 1)

DEFAULT_CTX_PER_SLOT = 4096
# The type the default model is served in: the embedded Q4_1 GGUF requantised once to q8_0 (its values are the
# Q4_1 ones, so nothing is lost: mean NLL per assistant token on the shared real sample's 24 first answers,
# 3,746 tokens, is 1.835 for Q4_1 and 1.841 for q8_0; greedy next token equal 98.5%). Measured quiet on this
# 2-core AVX2 machine (server timings, grounded real-style prompts, 1 gen + 2 batch threads, 3 interleaved
# repeats): prompt 150 → 250 tokens/s, generation 40 → 35, one client end to end 24.7 → 27.0 tokens/s, 16
# clients 39 → 56 tokens/s (16 clients are prefill-bound: ~190 new prompt tokens per 64 generated). Q4_0
# (llama.cpp repacks it for AVX2) was faster still (prompt 305, 16 clients 66) but requantising Q4_1 values to
# Q4_0 costs quality a student would read: NLL 2.064–2.134, greedy next token equal only 70–75%. Flash
# attention on/off/auto and a 128-token micro-batch were within noise of the defaults.
# Re-measured on this session's 2-core AVX512 EPYC (prebuilt AVX2 server, bench_llamacpp.py, 2 interleaved
# repeats, load ~2): q8_0 prompt 289 / generation 63 tokens/s; Q4_0 333 / 110 (still the quality loss above);
# F16 258 / 58, BF16 285 / 56 (no faster: the wheel has no BF16 kernels). q8_0 stays.
SERVED_TYPE = "Q8_0"
SERVED_KEEP: dict[str, str] | None = None
# The merged/converted GGUF type: q8_0 is close to f16 in quality and faster here (quiet, 2 threads, grounded
# prompts: prompt 181 vs 123 tokens/s, generation 32.9 vs 22.3).
CONVERTED_TYPE = "q8_0"


def require_xllamacpp():
    try:
        import xllamacpp
    except ImportError as exc:  # pragma: no cover - a dependency; only a broken install lacks it
        from ..models import ModelLoadError

        raise ModelLoadError("--engine llamacpp needs the xllamacpp package (`pip install xllamacpp`), which "
                             f"ships llama.cpp's server prebuilt: {exc}") from None
    return xllamacpp


@dataclass(frozen=True)
class GGUFModel:
    """What the llama.cpp server loads: one GGUF, optionally a GGUF LoRA on top, and the served name."""

    path: Path
    lora: Path | None = None
    name: str = "model"


def _merged_cache(key: str) -> Path:
    from ..utils import cache_dir

    return cache_dir() / "llamacpp" / key


def gguf_from_hf(model_dir: str | Path, outtype: str = CONVERTED_TYPE) -> Path:
    """Convert a HF checkpoint directory to GGUF once (cached by its fingerprint) with the export converter."""
    from ..publish.gguf import convert
    from ..utils import fingerprint_paths

    model_dir = Path(model_dir).resolve()
    out = _merged_cache(f"{model_dir.name}-{fingerprint_paths([model_dir])[:12]}") / f"{model_dir.name}-{outtype}.gguf"
    if out.exists() and out.stat().st_size > 0:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to GGUF %s for llama.cpp (one-off)", model_dir, outtype)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        convert(model_dir, tmp, outtype)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def merged_adapter_gguf(adapter: str | Path, base: str | None = None, outtype: str = CONVERTED_TYPE) -> Path:
    """Merge a PEFT adapter into its base (checked by ``publish.merge``) and convert it, once per adapter."""
    from ..publish.merge import merge_adapter
    from ..utils import fingerprint_paths

    adapter = Path(adapter).resolve()
    key = f"{adapter.parent.name}-{adapter.name}-{fingerprint_paths([adapter])[:12]}"
    merged = _merged_cache(key) / "merged"
    if not (merged / "config.json").exists():
        log.info("merging %s for llama.cpp (one-off)", adapter)
        # float32: the GGUF is quantised to q8_0 next, so a half-precision intermediate would only add error.
        merge_adapter(adapter, merged, dtype="float32", base=base)
    return gguf_from_hf(merged, outtype)


def served_default_gguf(qtype: str | None = None) -> Path:
    """The default model as llama.cpp serves it: the embedded Q4_1 GGUF requantised once to ``SERVED_TYPE``
    (cached by the wheel file's fingerprint), or the embedded file itself when ``SERVED_TYPE`` is Q4_1."""
    from .. import models
    from ..publish.gguf import requantize
    from ..utils import fingerprint_paths

    qtype = (qtype or SERVED_TYPE).upper()
    src = models.default_gguf_path()
    if qtype == "Q4_1":
        return src
    out = _merged_cache("default") / f"{src.stem}-{fingerprint_paths([src])[:12]}-{qtype}.gguf"
    if out.exists() and out.stat().st_size > 0:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("requantising the default model's GGUF to %s for llama.cpp (one-off, ~25 s)", qtype)
    return requantize(src, out, qtype, keep=SERVED_KEEP)


def resolve_gguf(model: str = "default", adapter: str | None = None, merged: str | None = None) -> GGUFModel:
    """Map the serve/chat/eval model options onto a GGUF file (converting once where needed)."""
    from .. import models
    from ..models import ModelLoadError

    lora = None
    if merged:
        if not (Path(merged) / "config.json").exists():
            raise ModelLoadError(f"{merged}: not a merged model directory (no config.json)")
        return GGUFModel(gguf_from_hf(merged), None, Path(merged).resolve().name)
    if adapter and not str(adapter).lower().endswith(".gguf"):
        if not (Path(adapter) / "adapter_config.json").exists():
            raise ModelLoadError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
        base = None if model == models.DEFAULT_MODEL else model
        return GGUFModel(merged_adapter_gguf(adapter, base=base), None,
                         f"{_display(model)}+{Path(adapter).resolve().name}")
    if adapter:
        lora = Path(adapter)
        if not lora.exists():
            raise ModelLoadError(f"{adapter}: GGUF LoRA file not found")
    if model == models.DEFAULT_MODEL:
        # A native server (AMX/AVX512-VNNI kernels) serves the embedded Q4_1 file itself: its AMX path runs Q4_1
        # faster than q8_0 (quiet bench_llamacpp on the AMX Xeon: generation 96.8 vs 74.8 tokens/s, one client
        # 77.7 vs 64.3, prompt 859 vs 869) and it is the shipped model's own values, no requantisation.
        path = served_default_gguf("Q4_1" if native_server() else None)
    elif str(model).lower().endswith(".gguf"):
        path = Path(model)
        if not path.exists():
            raise ModelLoadError(f"{model}: GGUF file not found")
    elif model == models.TINY_MODEL:
        path = gguf_from_hf(models.tiny_random_dir(), "f16")
    else:
        path = gguf_from_hf(models.resolve(model))
    name = _display(model) + (f"+{lora.stem}" if lora else "")
    return GGUFModel(path.resolve(), lora.resolve() if lora else None, name)


def _display(model: str) -> str:
    from .. import models

    return models.DEFAULT_NAME if model == models.DEFAULT_MODEL else str(model)


NATIVE_SERVER_ENV = "SAGPT_LLAMA_SERVER"


def native_server() -> str | None:
    """A ``llama-server`` binary built for this CPU (env ``SAGPT_LLAMA_SERVER``), used instead of xllamacpp's.

    Why: xllamacpp's wheel is one portable AVX2 build (its ``get_system_info()``: AVX2, no AVX512), so on a
    CPU with AVX512/VNNI the prebuilt server leaves those units idle. docs/serving.md shows how to build one
    (``-DGGML_NATIVE=ON``) and what it measured."""
    path = os.environ.get(NATIVE_SERVER_ENV)
    if not path:
        return None
    if not os.access(path, os.X_OK):
        from ..models import ModelLoadError

        raise ModelLoadError(f"{NATIVE_SERVER_ENV}={path}: not an executable llama-server binary")
    return path


def server_command(gguf: GGUFModel, port: int, parallel: int = 4, ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
                   threads: int | None = None, host: str = "127.0.0.1", extra: list[str] | tuple = ()) -> list[str]:
    """The exact command line of the llama.cpp server subprocess (this module run as a script, or a native
    ``llama-server`` with the same settings, see :func:`native_server`); ``extra``: more of its flags
    (``--threads-batch 2``, ``--ubatch-size 128``… — llama-server spells them the same), as the settings
    sweep passes them."""
    binary = native_server()
    if binary:
        trained = _context_length(gguf.path)
        per_slot = min(ctx_per_slot, trained) if trained else ctx_per_slot
        cmd = [binary, "--model", str(gguf.path), "--host", host, "--port", str(port), "--parallel", str(parallel),
               "--ctx-size", str(per_slot * parallel), "--threads", str(threads or default_threads()),
               "--threads-batch", str(threads or default_batch_threads()), "--poll", str(DEFAULT_POLL),
               "--alias", gguf.name, "--cont-batching", "--no-kv-unified", "--no-webui"]
        if gguf.lora:
            cmd += ["--lora", str(gguf.lora)]
        return cmd + list(extra)
    cmd = [sys.executable, "-m", "studyabroadgpt.serve.llamacpp_engine", "--model", str(gguf.path),
           "--host", host, "--port", str(port), "--parallel", str(parallel), "--ctx-per-slot", str(ctx_per_slot),
           "--alias", gguf.name]
    if threads:
        cmd += ["--threads", str(threads)]
    if gguf.lora:
        cmd += ["--lora", str(gguf.lora)]
    return cmd + list(extra)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaCppProcess(UpstreamProcess):
    """The llama.cpp server subprocess, with every slot's prompt cache primed with the grounding system prompt.

    Why: llama.cpp reuses a slot's KV cache for the longest common token prefix with the slot's last prompt
    (``cache_prompt``), and every grounded prompt starts with the same system prompt (~93 tokens of ~250). A
    fresh slot has nothing cached, so the first burst of students after start-up prefilled it once per slot:
    measured at 16 slots, 16 grounded questions at once, 64 tokens (load ~2): 3,791 prompt tokens to prefill
    and 41 tokens/s from cold slots, 2,307 and 70 tokens/s once each slot had served one. Priming costs one
    batched prefill of ``parallel`` × ~100 tokens at start-up (~1–2 s on 2 cores for 16 slots)."""

    def __init__(self, *args, parallel: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.parallel = parallel

    def start(self) -> None:
        super().start()
        prime_slots(self.base_url, self.parallel)


def prime_slots(base_url: str, parallel: int, timeout_s: float = 120.0) -> None:
    """Put the grounding system prompt into each of the server's ``parallel`` slots (``id_slot`` pins a request
    to a slot), all at once so llama.cpp prefills them in one batch. A failure only costs speed: it is logged
    with its reason and the server is used as it is."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from .grounding import SYSTEM_PROMPT

    def prime(slot: int) -> None:
        # The user turn only closes the chat template; the cached prefix is the system prompt's tokens.
        body = {"messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "Hello"}],
                "max_tokens": 1, "temperature": 0, "id_slot": slot, "cache_prompt": True}
        resp = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=timeout_s)
        resp.raise_for_status()

    try:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(prime, range(parallel)))
    except httpx.HTTPError as exc:
        log.warning("could not prime the llama.cpp slots' prompt cache (%s: %s); the first request per slot will "
                    "prefill the whole system prompt", type(exc).__name__, exc)


def llamacpp_process(gguf: GGUFModel, port: int | None = None, parallel: int = 4,
                     ctx_per_slot: int = DEFAULT_CTX_PER_SLOT, threads: int | None = None,
                     startup_timeout_s: float = 180.0, extra: list[str] | tuple = (),
                     log_path: Path | None = None) -> LlamaCppProcess:
    from ..utils import cache_dir

    port = port or _free_port()
    env = {"PYTHONPATH": os.pathsep.join(p for p in [str(Path(__file__).resolve().parents[2]),
                                                     os.environ.get("PYTHONPATH", "")] if p)}
    return LlamaCppProcess(server_command(gguf, port, parallel, ctx_per_slot, threads, extra=extra),
                           f"http://127.0.0.1:{port}", startup_timeout_s=startup_timeout_s, name="llama.cpp server",
                           log_path=log_path or cache_dir() / "logs" / f"llamacpp-{port}.log", env=env,
                           parallel=parallel)


def load_llamacpp_generator(model: str = "default", adapter: str | None = None, merged: str | None = None,
                            parallel: int = 4, ctx_per_slot: int = DEFAULT_CTX_PER_SLOT, threads: int | None = None,
                            port: int | None = None) -> OpenAICompatGenerator:
    """``--engine llamacpp``: resolve the GGUF, and a generator that starts the llama.cpp server with the app."""
    require_xllamacpp()
    gguf = resolve_gguf(model, adapter, merged)
    proc = llamacpp_process(gguf, port, parallel, ctx_per_slot, threads)
    return OpenAICompatGenerator(proc.base_url, gguf.name, model_name=gguf.name, process=proc,
                                 repetition_field="repeat_penalty")


@contextlib.contextmanager
def running_llamacpp(gguf: GGUFModel, **kwargs) -> Iterator[str]:
    """``with running_llamacpp(gguf) as base_url:`` a llama.cpp server for synchronous callers (eval)."""
    proc = llamacpp_process(gguf, **kwargs)
    proc.start()
    try:
        yield proc.base_url
    finally:
        proc.stop()


def eval_systems(stack: contextlib.ExitStack, base: str, adapter: str | None, base_name: str, tuned_name: str,
                 max_new_tokens: int, threads: int | None = None) -> list:
    """``eval generate --engine llamacpp``: the base model and (if given) base + adapter, each as a GGUF in its
    own llama.cpp server (alive until ``stack`` closes), answered through the eval's endpoint system with the
    same greedy settings as the hf systems."""
    from ..eval.systems import EndpointSystem

    systems = []
    for name, gguf in [(base_name, resolve_gguf(base)),
                       *([(tuned_name, resolve_gguf(base, adapter))] if adapter else [])]:
        url = stack.enter_context(running_llamacpp(gguf, parallel=1, threads=threads))
        systems.append(EndpointSystem(name, f"{url}/v1", model=gguf.name, max_new_tokens=max_new_tokens))
    return systems


# ------------------------------------------------------------------------------------------ server process


def _context_length(path: Path) -> int | None:
    """The model's trained context (GGUF metadata ``<arch>.context_length``), read without loading weights."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
        field = reader.fields.get(f"{arch}.context_length")
        return int(field.parts[-1][0]) if field is not None else None
    except Exception:  # noqa: BLE001 - metadata is advisory here; llama.cpp reports real errors itself
        return None


def serve_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="A llama.cpp server (OpenAI-compatible /v1, parallel slots with "
                                "continuous batching) for one GGUF, on loopback by default.")
    p.add_argument("--model", required=True, help="GGUF file")
    p.add_argument("--lora", default=None, help="GGUF LoRA adapter applied on top")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--parallel", type=int, default=4, help="slots: requests decoded together")
    p.add_argument("--ctx-per-slot", type=int, default=DEFAULT_CTX_PER_SLOT,
                   help="context tokens per slot (capped at the model's trained context)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: all cores but one for generation, all cores for prompts)")
    p.add_argument("--poll", type=int, default=DEFAULT_POLL, help="thread spin-wait level 0-100 (0 on shared CPUs)")
    p.add_argument("--threads-batch", type=int, default=None,
                   help="CPU threads for prompt processing (default: --threads)")
    p.add_argument("--batch-size", type=int, default=None, help="logical batch (prompt tokens per decode call)")
    p.add_argument("--ubatch-size", type=int, default=None, help="physical micro-batch")
    p.add_argument("--flash-attn", choices=("auto", "on", "off"), default="auto", help="flash attention")
    p.add_argument("--alias", default=None, help="model name the API reports")
    p.add_argument("--api-key", default=os.environ.get("LLAMA_API_KEY"), help="require this key (env LLAMA_API_KEY)")
    args = p.parse_args(argv)

    xlc = require_xllamacpp()
    model = Path(args.model)
    if not model.exists():
        print(f"error: {model}: GGUF file not found", file=sys.stderr)
        return 2
    trained = _context_length(model)
    per_slot = min(args.ctx_per_slot, trained) if trained else args.ctx_per_slot
    params = xlc.CommonParams()
    params.model.path = str(model)
    params.hostnames = [args.host]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = per_slot * args.parallel  # split evenly: each slot gets per_slot tokens
    params.kv_unified = False
    params.cont_batching = True
    threads = args.threads or default_threads()
    # An explicit --threads is the whole budget (both phases); otherwise prefill gets every core.
    threads_batch = args.threads_batch or args.threads or default_batch_threads()
    for cpu, n in ((params.cpuparams, threads), (params.cpuparams_batch, threads_batch)):
        cpu.n_threads = n
        cpu.poll = args.poll
    if args.batch_size:
        params.n_batch = args.batch_size
    if args.ubatch_size:
        params.n_ubatch = args.ubatch_size
    fa = xlc.llama_flash_attn_type
    params.flash_attn_type = {"auto": fa.LLAMA_FLASH_ATTN_TYPE_AUTO, "on": fa.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                              "off": fa.LLAMA_FLASH_ATTN_TYPE_DISABLED}[args.flash_attn]
    if args.alias:
        params.model_alias = {args.alias}
    if args.api_key:
        params.api_keys = [args.api_key]
    if args.lora:
        params.lora_adapters = [xlc.CommonAdapterLoraInfo(str(Path(args.lora).resolve()), 1.0)]
    params.verbosity = 2  # warnings and errors
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xlc.Server(params)  # loads the model and starts listening; returns when ready
    print(f"llama.cpp server for {model.name} on {server.listening_address} ({args.parallel} slots x {per_slot} "
          f"tokens, {threads} threads, {threads_batch} for prompts)", file=sys.stderr, flush=True)
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(serve_main())
