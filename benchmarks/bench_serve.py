"""Serving benchmark: engines side by side, N concurrent streaming clients on loopback against the real stack.

Every engine (``--engines hf,llamacpp,vllm``; ``openai`` with ``--upstream``) serves the same questions
through the same app (grounding, gate, limits, streaming). Configurations are interleaved — for each repeat,
for each client count, each engine in turn — so a change in the shared machine's load hits every engine alike;
each figure is the median over ``--repeats``. Per configuration: completion tokens/s (all clients together),
requests/s, p50/p95 latency, p50 time to first token, errors, and peak RSS; the grounding overhead comes from
the same questions with grounding off (1 client). ``uptime`` is recorded before and after the whole run, the
1-minute load average before and after each configuration.

Questions: the real-style prompt set (single-turn rows), a different slice for each configuration and the
same slice for every engine, so no engine is asked a question twice (llama.cpp and vLLM would answer a repeat
from their prompt cache) and all engines answer the same ones.

Answer mode ``generate`` (the model always answers) so tokens/s measures the engine, not how often ``auto``
falls back to a composed answer. Peak RSS: the hf engine lives in this process (which also holds the
retrieval encoder, the gate and the clients); a subprocess engine (llama.cpp, vLLM) is this process *before*
the hf model was loaded plus the engine's process tree.

vLLM: ``--engines vllm --vllm-bin VENV`` starts it exactly as ``sagpt serve --engine vllm`` does, inside the
run; ``--vllm-url URL`` uses one already started from the same command line (its start-up takes minutes on a
CPU, which need not count against a benchmark's quiet slot), with the same generator settings.

    python benchmarks/bench_serve.py --engines hf,llamacpp --clients 1,4,16 --repeats 3 --max-tokens 64
    python benchmarks/bench_serve.py --model tiny-random --engines hf --clients 1,4 --repeats 1   # plumbing

Writes ``results.json``, ``results.md`` and ``bench_serve.png`` into ``--out`` (atomically).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

def questions(sample: str | None, seed: int = 0) -> list[str]:
    """The questions to ask: the real-style prompt set (single-turn rows, seeded shuffle so categories mix), or
    the first user turns of ``--sample`` conversations. Each configuration gets its own slice (``slice_for``):
    llama.cpp and vLLM reuse a cached prompt prefix, so asking one question twice in a run would flatter
    their time to first token; every engine gets the same slice, so they still answer the same questions."""
    import random

    if sample:
        from studyabroadgpt.data.load import load_valid

        convs = load_valid(sample).conversations
        qs = [next(t.text for t in c.turns if t.role == "user") for c in convs if any(t.role == "user" for t in c.turns)]
        if not qs:
            raise SystemExit(f"{sample}: no user turns")
        return [q[:1500] for q in qs]
    from studyabroadgpt.eval.prompts import load_real_style

    qs = [r["prompt"] for r in load_real_style() if not r.get("messages")]
    random.Random(seed).shuffle(qs)
    return qs


def slice_for(qs: list[str], start: int, n: int) -> list[str]:
    return [qs[(start + i) % len(qs)] for i in range(n)]


class PeakRSS:
    """Samples resident memory every 50 ms (psutil) and keeps the maximum, for this process and, separately,
    for an engine subprocess with all its children (``watch(pid)``: vLLM runs an API server, an engine core
    and a worker process)."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.proc, self.peak, self.child_peak, self._stop = psutil.Process(), 0, 0, threading.Event()
        self.child = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, pid: int | None) -> None:
        self.child = self.psutil.Process(pid) if pid else None

    def reset(self) -> None:
        self.peak = self.child_peak = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            child = self.child
            if child is not None:
                try:
                    tree = [child, *child.children(recursive=True)]
                    self.child_peak = max(self.child_peak, sum(p.memory_info().rss for p in tree))
                except self.psutil.Error:
                    pass
            time.sleep(0.05)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def listening_pid(url: str) -> int | None:
    """The process listening on ``url``'s port (an engine started outside this run), for its peak RSS."""
    import psutil
    from urllib.parse import urlparse

    port = urlparse(url).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def _uptime() -> str:
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average {os.getloadavg()}"


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


async def one_request(client, base: str, question: str, max_tokens: int, rag: bool) -> dict:
    start = time.perf_counter()
    first = None
    usage = {}
    body = {"messages": [{"role": "user", "content": question}], "stream": True, "max_tokens": max_tokens,
            "rag": rag}
    try:
        async with client.stream("POST", f"{base}/v1/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                return {"ok": False, "status": resp.status_code, "latency": time.perf_counter() - start}
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    return {"ok": False, "status": event["error"].get("code"), "latency": time.perf_counter() - start}
                delta = event["choices"][0]["delta"].get("content") if event.get("choices") else None
                if delta and first is None:
                    first = time.perf_counter() - start
                usage = event.get("usage") or usage
    except Exception as exc:  # a benchmark counts failures rather than stopping at the first
        return {"ok": False, "status": type(exc).__name__, "latency": time.perf_counter() - start}
    return {"ok": True, "latency": time.perf_counter() - start, "ttft": first,
            "tokens": int(usage.get("completion_tokens", 0)), "prompt_tokens": int(usage.get("prompt_tokens", 0))}


async def run_clients(base: str, qs: list[str], clients: int, total: int, time_limit: float, max_tokens: int,
                      rag: bool, progress, task) -> tuple[list[dict], float]:
    import httpx

    todo = asyncio.Queue()
    for q in qs[:total]:
        todo.put_nowait(q)
    results: list[dict] = []
    deadline = time.perf_counter() + time_limit

    async def worker(client) -> None:
        while time.perf_counter() < deadline:
            try:
                q = todo.get_nowait()
            except asyncio.QueueEmpty:
                return
            results.append(await one_request(client, base, q, max_tokens, rag))
            progress.advance(task)

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=httpx.Timeout(time_limit + 60)) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return results, time.perf_counter() - start


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def summarise(engine: str, rag: bool, clients: int, results: list[dict], wall: float, rss_mb: float,
              load: tuple[float, float]) -> dict:
    ok = [r for r in results if r["ok"]]
    lat = [r["latency"] for r in ok]
    ttft = [r["ttft"] for r in ok if r.get("ttft") is not None]
    tokens = sum(r["tokens"] for r in ok)
    return {"engine": engine, "grounding": rag, "clients": clients, "requests": len(results), "ok": len(ok),
            "errors": len(results) - len(ok),
            "error_statuses": sorted({str(r["status"]) for r in results if not r["ok"]}),
            "wall_s": round(wall, 2), "requests_per_s": round(len(ok) / wall, 3) if wall else None,
            "tokens_per_s": round(tokens / wall, 1) if wall else None, "completion_tokens": tokens,
            "p50_latency_s": _r(pct(lat, 0.5)), "p95_latency_s": _r(pct(lat, 0.95)),
            "p50_ttft_s": _r(pct(ttft, 0.5)), "peak_rss_mb": round(rss_mb),
            "mean_prompt_tokens": round(statistics.fmean(r["prompt_tokens"] for r in ok)) if ok else None,
            "load_before": load[0],
            "load_after": load[1]}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def median_rows(runs: list[dict]) -> list[dict]:
    """One row per (engine, grounding, clients): the median of each figure over the repeats."""
    keys = sorted({(r["engine"], r["grounding"], r["clients"]) for r in runs},
                  key=lambda k: (not k[1], k[2], k[0]))
    rows = []
    for engine, rag, clients in keys:
        reps = [r for r in runs if (r["engine"], r["grounding"], r["clients"]) == (engine, rag, clients)]
        row = {"engine": engine, "grounding": rag, "clients": clients, "repeats": len(reps),
               "ok": sum(r["ok"] for r in reps), "errors": sum(r["errors"] for r in reps)}
        for key in ("tokens_per_s", "requests_per_s", "p50_latency_s", "p95_latency_s", "p50_ttft_s", "peak_rss_mb",
                    "mean_prompt_tokens"):
            vals = [r[key] for r in reps if r[key] is not None]
            row[key] = round(statistics.median(vals), 3) if vals else None
        row["tokens_per_s_runs"] = [r["tokens_per_s"] for r in reps]
        row["load"] = [min(r["load_before"] for r in reps), max(r["load_after"] for r in reps)]
        rows.append(row)
    return rows


def ratios(rows: list[dict], engine: str, baseline: str = "hf") -> dict:
    """``engine``'s tokens/s over the baseline's, per client count, grounding on."""
    out = {}
    for row in rows:
        if row["engine"] != engine or not row["grounding"]:
            continue
        base = next((b for b in rows if b["engine"] == baseline and b["grounding"] and b["clients"] == row["clients"]),
                    None)
        if base and base["tokens_per_s"] and row["tokens_per_s"]:
            out[row["clients"]] = round(row["tokens_per_s"] / base["tokens_per_s"], 2)
    return out


def overhead(rows: list[dict]) -> dict:
    """Grounding's cost per engine at 1 client: p50 latency and tokens/s with grounding on vs off."""
    out = {}
    for engine in sorted({r["engine"] for r in rows}):
        on = next((r for r in rows if r["engine"] == engine and r["grounding"] and r["clients"] == 1), None)
        off = next((r for r in rows if r["engine"] == engine and not r["grounding"] and r["clients"] == 1), None)
        if on and off and on["p50_latency_s"] and off["p50_latency_s"]:
            out[engine] = {"p50_latency_on_s": on["p50_latency_s"], "p50_latency_off_s": off["p50_latency_s"],
                           "extra_latency_s": round(on["p50_latency_s"] - off["p50_latency_s"], 3),
                           "ttft_on_s": on["p50_ttft_s"], "ttft_off_s": off["p50_ttft_s"],
                           "tokens_per_s_on": on["tokens_per_s"], "tokens_per_s_off": off["tokens_per_s"]}
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from studyabroadgpt.utils import save_figure

    engines = sorted({r["engine"] for r in rows})
    grounded = [r for r in rows if r["grounding"]]
    clients = sorted({r["clients"] for r in grounded})
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    width = 0.8 / max(1, len(engines))
    for ax, key, title in zip(axes, ("tokens_per_s", "p95_latency_s", "p50_ttft_s"),
                              ("completion tokens/s", "p95 latency (s)", "p50 time to first token (s)")):
        for i, engine in enumerate(engines):
            vals = [next((r[key] or 0 for r in grounded if r["engine"] == engine and r["clients"] == c), 0)
                    for c in clients]
            bars = ax.bar([j + i * width for j in range(len(clients))], vals, width, label=engine)
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks([j + width * (len(engines) - 1) / 2 for j in range(len(clients))], [f"{c} clients" for c in clients])
        ax.set_title(title)
    axes[0].legend()
    fig.suptitle("StudyAbroadGPT serving benchmark: grounding + gate on, medians over repeats")
    fig.tight_layout()
    save_figure(fig, path)


def build_engine(name: str, args, rss: PeakRSS):
    """The generator for one engine, plus the subprocess pid to watch (None when in this process)."""
    if name == "hf":
        from studyabroadgpt.serve.hf_engine import load_hf_generator

        return load_hf_generator(args.model, adapter=args.adapter, dtype=args.dtype, max_batch=max(args.clients_list),
                                 threads=args.threads)
    name = name.split(":api", 1)[0]
    if name.split("@", 1)[0] in ("llamacpp", "llamacpp-native"):
        from studyabroadgpt.serve.llamacpp_engine import NATIVE_SERVER_ENV, load_llamacpp_generator

        # "llamacpp@2": the same engine with 2 threads, to compare thread counts within one run.
        threads = int(name.split("@", 1)[1]) if "@" in name else args.llamacpp_threads
        # "llamacpp-native": the same engine on a llama-server built for this CPU (--llama-server); the
        # command line is fixed when the generator is built, so the variable is only set around that.
        native = name.startswith("llamacpp-native")
        if native and not args.llama_server:
            raise SystemExit("--engines llamacpp-native needs --llama-server PATH")
        saved = os.environ.pop(NATIVE_SERVER_ENV, None)
        if native:
            os.environ[NATIVE_SERVER_ENV] = args.llama_server
        try:
            return load_llamacpp_generator(args.model, adapter=args.adapter, parallel=max(args.clients_list),
                                           ctx_per_slot=args.ctx_per_slot, threads=threads)
        finally:
            os.environ.pop(NATIVE_SERVER_ENV, None)
            if saved is not None:
                os.environ[NATIVE_SERVER_ENV] = saved
    if name == "openai":
        from studyabroadgpt.serve.openai_engine import OpenAICompatGenerator

        if not args.upstream:
            raise SystemExit("--engines openai needs --upstream URL")
        return OpenAICompatGenerator(args.upstream, args.upstream_model)
    if name == "vllm":
        if args.vllm_url:
            from studyabroadgpt.serve.openai_engine import OpenAICompatGenerator

            # The generator --engine vllm builds, minus the process: same model name and decoding fields.
            return OpenAICompatGenerator(args.vllm_url, "base", model_name=f"{args.model} (vLLM)",
                                         repetition_field="repetition_penalty")
        # Exactly what `sagpt serve --engine vllm` builds (vLLM's own venv via --vllm-bin / SAGPT_VLLM).
        from studyabroadgpt.serve.cli import EngineOptions
        from studyabroadgpt.serve.llamacpp_engine import _free_port

        opts = EngineOptions(engine="vllm", model=args.model, adapter=args.adapter, vllm_bin=args.vllm_bin,
                             vllm_port=_free_port())
        opts.check()
        return opts.build()
    raise SystemExit(f"unknown engine {name!r}: use hf, llamacpp, llamacpp-native, openai or vllm")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", default="hf,llamacpp", help="comma-separated: hf, llamacpp, llamacpp@THREADS, "
                   "llamacpp-native, openai, vllm; a llamacpp name may end in :apiN (this process's torch threads)")
    p.add_argument("--model", default="default")
    p.add_argument("--adapter", default=None)
    p.add_argument("--clients", default="1,4,16", help="comma-separated concurrent client counts")
    p.add_argument("--requests", type=int, default=4,
                   help="requests per configuration at 1 client; N clients send max(N, this)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; figures are medians")
    p.add_argument("--no-rag-clients", default="1", help="client counts also run with grounding off ('' for none)")
    p.add_argument("--time-limit", type=float, default=600.0, help="seconds per configuration")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="hf engine torch threads (default: torch's)")
    p.add_argument("--llamacpp-threads", type=int, default=None, help="llama.cpp threads (default: cores - 1)")
    p.add_argument("--ctx-per-slot", type=int, default=2048)
    p.add_argument("--llama-server", default=None, help="--engines llamacpp-native: a llama-server binary built "
                   "for this CPU (see docs/serving.md)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--upstream", default=None)
    p.add_argument("--upstream-model", default=None)
    p.add_argument("--vllm-bin", default=None, help="vLLM's virtualenv (or env SAGPT_VLLM) for --engines vllm")
    p.add_argument("--vllm-url", default=None, help="--engines vllm: a vLLM server already running (its "
                   "start-up then does not count against the run)")
    p.add_argument("--sample", default=None, help="ask the first user turns of these conversations instead of "
                   "the real-style prompt set")
    p.add_argument("--seed", type=int, default=0, help="shuffle of the prompt set")
    p.add_argument("--out", default="runs/bench-serve")
    args = p.parse_args(argv)
    args.clients_list = [int(c) for c in args.clients.split(",")]
    no_rag_clients = [int(c) for c in args.no_rag_clients.split(",") if c.strip()]

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The repository root, so tests/serve/conftest.py imports as a package (it imports ..conftest's free_port).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from tests.serve.conftest import running  # the same loopback uvicorn-in-a-thread helper the tests use
    from studyabroadgpt.serve.answer import Answerer
    from studyabroadgpt.serve.app import create_app
    from studyabroadgpt.serve.settings import ServeSettings
    from studyabroadgpt.utils import atomic_write_json, atomic_write_text, library_versions

    console = Console(width=180)  # the table is wide; a log file should not wrap it
    uptime_before = _uptime()
    console.print(f"uptime before: {uptime_before}")
    qs = questions(args.sample, args.seed)
    engine_names = [e.strip() for e in args.engines.split(",") if e.strip()]
    console.print(f"loading the knowledge base and {', '.join(engine_names)} for {args.model}…")
    grounded = Answerer.from_kb(mode="generate")
    plain = Answerer(None, None)
    runs: list[dict] = []
    partial = Path(args.out) / "runs.jsonl"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text("")
    with PeakRSS() as rss:
        base_rss = rss.proc.memory_info().rss  # grounding stack only, before any in-process model
        import torch

        torch_default = torch.get_num_threads()
        generators = {name: build_engine(name, args, rss) for name in engine_names}
        # This process's torch threads per engine (the retrieval encoder, the gate; hf's model too): hf's setting
        # for every engine, unless the name ends in ":apiN" ("llamacpp:api1"), to compare within one run what
        # the API's threads beside a subprocess engine cost (quiet, 2 cores, 2026-12-02: 1 vs 2 within noise).
        api_threads = {name: int(name.split(":api", 1)[1]) if ":api" in name else (args.threads or torch_default)
                       for name in engine_names}
        pids = {}
        for name, gen in generators.items():
            asyncio.run(gen.start())  # the llama.cpp server starts once, for all repeats
            proc = getattr(gen, "process", None)
            pids[name] = proc.proc.pid if proc is not None and proc.proc is not None else None
            if name == "vllm" and args.vllm_url:
                pids[name] = listening_pid(args.vllm_url)
        plan = [(rep, rag, clients, name) for rep in range(args.repeats)
                for rag, counts in ((True, args.clients_list), (False, no_rag_clients)) for clients in counts
                for name in engine_names]
        # Interleave: every repeat runs each configuration on each engine back to back. Each configuration
        # (repeat, grounding, clients) asks its own questions; every engine gets the same ones.
        starts, at = {}, 0
        for rep, rag, clients, _ in plan:
            if (rep, rag, clients) not in starts:
                starts[(rep, rag, clients)] = at
                at += max(clients, args.requests)
        if at > len(qs):
            console.print(f"[yellow]{at} requests per engine but {len(qs)} distinct questions: some repeat")
        with Progress(console=console) as progress:
            overall = progress.add_task("configurations", total=len(plan))
            for rep, rag, clients, name in plan:
                gen = generators[name]
                # This process's torch threads (retrieval encoder, gate; the hf engine's model too) for the row.
                torch.set_num_threads(api_threads[name])
                total = max(clients, args.requests)
                asked = slice_for(qs, starts[(rep, rag, clients)], total)
                settings = ServeSettings(rag=rag, gate=rag, max_concurrency=max(args.clients_list),
                                         max_queue=max(args.clients_list) * 2,
                                         max_tokens_cap=max(args.max_tokens, 1024),
                                         request_timeout_s=args.time_limit, queue_timeout_s=args.time_limit)
                with running(create_app(gen, grounded if rag else plain, settings)) as base:
                    task = progress.add_task(f"#{rep + 1} {name} {'rag' if rag else 'no-rag'} ×{clients}",
                                             total=total)
                    rss.watch(pids[name])
                    rss.reset()
                    load0 = load_average()
                    results, wall = asyncio.run(run_clients(base, asked, clients, total, args.time_limit,
                                                            args.max_tokens, rag, progress, task))
                    load1 = load_average()
                    peak = rss.peak if pids[name] is None else base_rss + rss.child_peak
                    runs.append(summarise(name, rag, clients, results, wall, peak / 2**20, (load0, load1)))
                    # Each finished run is on disk at once: a benchmark cut short still leaves its figures.
                    with open(partial, "a") as fh:
                        fh.write(json.dumps({"repeat": rep, **runs[-1]}) + "\n")
                    progress.remove_task(task)
                progress.advance(overall)
        for gen in generators.values():
            asyncio.run(gen.close())

    rows = median_rows(runs)
    cols = ["engine", "grounding", "clients", "ok", "errors", "tokens_per_s", "requests_per_s", "p50_latency_s",
            "p95_latency_s", "p50_ttft_s", "mean_prompt_tokens", "peak_rss_mb", "load"]
    table = Table(title=f"bench_serve: {args.model}, max_tokens={args.max_tokens}, medians of {args.repeats}")
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(r[c]) for c in cols])
    console.print(table)
    speedups = {e: ratios(rows, e) for e in engine_names if e != "hf"} if "hf" in engine_names else {}
    costs = overhead(rows)
    console.print(f"tokens/s over hf (grounding on), per client count: {speedups}")
    console.print(f"grounding overhead at 1 client: {costs}")
    hf_gen = generators.get("hf")
    uptime_after = _uptime()
    console.print(f"uptime after: {uptime_after}")
    meta = {"uptime_before": uptime_before, "uptime_after": uptime_after, "distinct_questions": len(qs),"model": args.model, "adapter": args.adapter, "engines": engine_names,
            "model_names": {n: g.model_name for n, g in generators.items()}, "max_tokens": args.max_tokens,
            "requests_at_1_client": args.requests, "repeats": args.repeats, "answer_mode": "generate",
            "max_concurrency": max(args.clients_list), "hf_threads": args.threads, "api_torch_threads": api_threads,
            "llamacpp_threads": args.llamacpp_threads, "ctx_per_slot": args.ctx_per_slot, "cpu_count": os.cpu_count(),
            "api_rss_before_models_mb": round(base_rss / 2**20),
            "hf_mean_batch": round(statistics.fmean(hf_gen.batches), 2) if hf_gen and hf_gen.batches else None,
            "versions": library_versions()}
    out = Path(args.out)
    atomic_write_json(out / "results.json", {"meta": meta, "rows": rows, "runs": runs, "speedup_vs_hf": speedups,
                                             "grounding_overhead": costs})
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    atomic_write_text(out / "results.md", f"model {args.model}, max_tokens {args.max_tokens}, medians of "
                      f"{args.repeats} interleaved repeats, load = 1-min load average [min before, max after]\n"
                      f"uptime before: {uptime_before}\nuptime after: {uptime_after}\n\n"
                      + "\n".join(md) + f"\n\nspeed-up over hf (tokens/s, grounding on): {speedups}\n\n"
                      f"grounding overhead (1 client): {costs}\n")
    plot(rows, out / "bench_serve.png")
    console.print(f"wrote {out}/results.json, results.md, bench_serve.png")
    return 0 if all(r["errors"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
