"""Decoding settings against repetition loops, measured on the real small model.

    python benchmarks/bench_decoding.py --limit 16 --max-tokens 200 --out runs/bench_decoding

Generates grounded answers (the server's own prompts, ``generate`` mode) for ``--limit`` real-style prompts
with each decoding configuration, interleaved batch by batch so machine load hits every configuration
alike, and counts answers with a repetition loop (``serve.checks.find_loops`` on the raw text, before any
cutting), tokens generated and wall time. The model is not stopped early at a loop here (``stop_on_loop``
off), so the count is the model's own behaviour under each setting. Writes summary.json / summary.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    ("greedy (before)", 1.0, 0),
    ("ngram 4", 1.0, 4),
    ("rp 1.15 + ngram 4", 1.15, 4),
    ("rp 1.3 + ngram 3", 1.3, 3),
]


async def _run(gen, turns, params):
    from studyabroadgpt.serve.answer import stream_turn

    async def one(t):
        parts, last = [], None
        async for p in stream_turn(gen, t, params, stop_on_loop=False):
            parts.append(p.text)
            last = p
        return "".join(parts), (last.completion_tokens if last else 0)

    return await asyncio.gather(*[one(t) for t in turns])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--configs", default=None, help="comma-separated names of CONFIGS to run (default: all)")
    ap.add_argument("--out", default="runs/bench_decoding")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_answers import load, pick_prompts

    from studyabroadgpt.eval.prompts import messages_of
    from studyabroadgpt.serve.answer import Answerer
    from studyabroadgpt.serve.checks import find_loops
    from studyabroadgpt.serve.generation import GenParams
    from studyabroadgpt.serve.hf_engine import load_hf_generator

    configs = [c for c in CONFIGS if not args.configs or c[0] in args.configs.split(",")]
    rows = pick_prompts(args.limit)
    answerer = Answerer.from_kb(mode="generate")
    turns = [answerer.prepare(messages_of(r), mode="generate") for r in rows]
    gen = load_hf_generator("default", adapter=args.adapter, max_batch=args.batch)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(gen.start())
    stats = {name: {"looping": 0, "tokens": 0, "seconds": 0.0, "loops": []} for name, _, _ in configs}
    load_start = load()
    try:
        for i in range(0, len(turns), args.batch):
            chunk, ids = turns[i:i + args.batch], [r["id"] for r in rows[i:i + args.batch]]
            for name, rp, ng in configs:
                params = GenParams(max_tokens=args.max_tokens, repetition_penalty=rp, no_repeat_ngram_size=ng)
                t0 = time.perf_counter()
                results = loop.run_until_complete(_run(gen, chunk, params))
                stats[name]["seconds"] += time.perf_counter() - t0
                for rid, (text, n) in zip(ids, results):
                    stats[name]["tokens"] += n
                    if find_loops(text):
                        stats[name]["looping"] += 1
                        stats[name]["loops"].append({"id": rid, "text": text[:600]})
    finally:
        loop.run_until_complete(gen.close())
        loop.close()
    summary = {"prompts": len(rows), "max_tokens": args.max_tokens, "load_start": load_start, "load_end": load(),
               "configs": stats}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    lines = [f"{len(rows)} real-style prompts, max_tokens {args.max_tokens}, load {load_start} -> {load()}", "",
             "| decoding | looping answers | tokens | tokens/s |", "|---|---|---|---|"]
    for name, s in stats.items():
        lines.append(f"| {name} | {s['looping']}/{len(rows)} | {s['tokens']} | {s['tokens'] / s['seconds']:.1f} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
