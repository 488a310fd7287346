"""Serving benchmark: N concurrent streaming clients on loopback against the real server stack.

For each configuration (grounding on/off × client counts) it sends a bounded number of requests within a
bounded time and reports requests/s, completion tokens/s, p50/p95 latency, p50 time to first token, errors
and the process's peak RSS. The server runs in this process (uvicorn in a thread), so the RSS includes the
clients — a few tens of MB over the server alone.

    python benchmarks/bench_serve.py --model default --clients 1,4 --requests 8 --max-tokens 64
    python benchmarks/bench_serve.py --model tiny-random --requests 16   # the plumbing only, in seconds

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

FALLBACK_QUESTIONS = [
    "How much money do I need to show for a UK student visa if I study in London?",
    "Can I work part-time on an F-1 visa in the US?",
    "What IELTS score do UK universities usually ask for?",
    "When can I apply for my UK Student visa?",
    "Do I need health insurance to study in the United States?",
    "How long can I stay in the UK after graduating?",
    "What is the Immigration Health Surcharge for students?",
    "How many hours can I work during term time in the UK?",
]


def questions(sample: str | None) -> list[str]:
    """First user turns of the sample conversations (real advising questions), else a built-in set."""
    if sample and Path(sample).exists():
        from studyabroadgpt.data.load import load_valid

        convs = load_valid(sample).conversations
        qs = [next(t.text for t in c.turns if t.role == "user") for c in convs if any(t.role == "user" for t in c.turns)]
        if qs:
            return [q[:1500] for q in qs]
    return FALLBACK_QUESTIONS


class PeakRSS:
    """Samples this process's resident memory every 50 ms (psutil) and keeps the maximum."""

    def __init__(self) -> None:
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


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
            "tokens": int(usage.get("completion_tokens", 0))}


async def run_clients(base: str, qs: list[str], clients: int, total: int, time_limit: float, max_tokens: int,
                      rag: bool, progress, task) -> tuple[list[dict], float]:
    import httpx

    todo = asyncio.Queue()
    for i in range(total):
        todo.put_nowait(qs[i % len(qs)])
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


def summarise(name: str, rag: bool, clients: int, results: list[dict], wall: float, peak_rss: int) -> dict:
    ok = [r for r in results if r["ok"]]
    lat = [r["latency"] for r in ok]
    ttft = [r["ttft"] for r in ok if r.get("ttft") is not None]
    tokens = sum(r["tokens"] for r in ok)
    return {"config": name, "grounding": rag, "clients": clients, "requests": len(results), "ok": len(ok),
            "errors": len(results) - len(ok), "error_statuses": sorted({str(r["status"]) for r in results if not r["ok"]}),
            "wall_s": round(wall, 2), "requests_per_s": round(len(ok) / wall, 3) if wall else None,
            "tokens_per_s": round(tokens / wall, 1) if wall else None, "completion_tokens": tokens,
            "p50_latency_s": _r(pct(lat, 0.5)), "p95_latency_s": _r(pct(lat, 0.95)),
            "p50_ttft_s": _r(pct(ttft, 0.5)), "mean_latency_s": _r(statistics.fmean(lat) if lat else None),
            "peak_rss_mb": round(peak_rss / 2**20)}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from studyabroadgpt.utils import save_figure

    labels = [r["config"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, key, title in zip(axes, ("tokens_per_s", "p95_latency_s", "p50_ttft_s"),
                              ("completion tokens/s", "p95 latency (s)", "p50 time to first token (s)")):
        vals = [r[key] or 0 for r in rows]
        bars = ax.bar(labels, vals, color=["#2458d3" if r["grounding"] else "#9aa6b8" for r in rows])
        ax.bar_label(bars, fmt="%.2f")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle("StudyAbroadGPT serving benchmark (blue: grounded + gate, grey: --no-rag)")
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--adapter", default=None)
    p.add_argument("--clients", default="1,4", help="comma-separated concurrent client counts")
    p.add_argument("--requests", type=int, default=8, help="requests per configuration")
    p.add_argument("--time-limit", type=float, default=240.0, help="seconds per configuration")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--max-concurrency", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--sample", default="/work/shared/data/studyabroadgpt-sample/conversations.jsonl")
    p.add_argument("--out", default="runs/bench-serve")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "serve"))
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from conftest import running  # the same loopback uvicorn-in-a-thread helper the tests use
    from studyabroadgpt.serve.answer import Answerer
    from studyabroadgpt.serve.app import create_app
    from studyabroadgpt.serve.hf_engine import load_hf_generator
    from studyabroadgpt.serve.settings import ServeSettings
    from studyabroadgpt.utils import atomic_write_json, atomic_write_text, library_versions

    console = Console()
    client_counts = [int(c) for c in args.clients.split(",")]
    qs = questions(args.sample)
    console.print(f"loading {args.model} and the knowledge base…")
    generator = load_hf_generator(args.model, adapter=args.adapter, dtype=args.dtype,
                                  max_batch=args.max_concurrency, threads=args.threads)
    answerer = Answerer.from_kb()
    rows = []
    with PeakRSS() as rss, Progress(console=console) as progress:
        for rag in (True, False):
            settings = ServeSettings(rag=rag, gate=rag, max_concurrency=args.max_concurrency,
                                     max_queue=max(client_counts) * 2, max_tokens_cap=max(args.max_tokens, 1024),
                                     request_timeout_s=args.time_limit, queue_timeout_s=args.time_limit)
            with running(create_app(generator, answerer if rag else Answerer(None, None), settings)) as base:
                for clients in client_counts:
                    name = f"{'rag' if rag else 'no-rag'} ×{clients}"
                    task = progress.add_task(name, total=args.requests)
                    rss.peak = 0
                    results, wall = asyncio.run(run_clients(base, qs, clients, args.requests, args.time_limit,
                                                            args.max_tokens, rag, progress, task))
                    rows.append(summarise(name, rag, clients, results, wall, rss.peak))

    table = Table(title=f"bench_serve: {generator.model_name}, max_tokens={args.max_tokens}")
    cols = ["config", "ok", "errors", "requests_per_s", "tokens_per_s", "p50_latency_s", "p95_latency_s",
            "p50_ttft_s", "peak_rss_mb"]
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(r[c]) for c in cols])
    console.print(table)
    out = Path(args.out)
    meta = {"model": generator.model_name, "max_tokens": args.max_tokens, "requests": args.requests,
            "max_concurrency": args.max_concurrency, "threads": args.threads, "cpu_count": os.cpu_count(),
            "batches_run": len(generator.batches), "mean_batch": round(statistics.fmean(generator.batches), 2)
            if generator.batches else None, "versions": library_versions()}
    atomic_write_json(out / "results.json", {"meta": meta, "results": rows})
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    atomic_write_text(out / "results.md", f"model {generator.model_name}, max_tokens {args.max_tokens}, "
                      f"{args.requests} requests per config\n\n" + "\n".join(md) + "\n")
    plot(rows, out / "bench_serve.png")
    console.print(f"wrote {out}/results.json, results.md, bench_serve.png")
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
