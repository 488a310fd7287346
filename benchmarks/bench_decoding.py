"""Decoding settings on the real small model: loops against nonsense against staying on topic.

    python benchmarks/bench_decoding.py --limit 10 --max-tokens 192 --out runs/bench_decoding
    python benchmarks/bench_decoding.py --rescore --out runs/bench_decoding     # re-score stored answers

Generates grounded answers (the server's own prompts, ``generate`` mode) for ``--limit`` real-style prompts
(round-robin over categories) with each decoding configuration, interleaved batch by batch so machine load
hits every configuration alike. The model is not stopped early at a loop (``stop_on_loop`` off), so the
counts are the model's own behaviour under each setting. Per configuration, on the raw text:

* looping — ``serve.checks.find_loops``;
* degenerate — ``serve.checks.find_degenerate`` (letter chains, runaway lists, non-words, character runs);
* off topic — ``serve.checks.answer_off_topic`` (another destination, nothing in common with the question);
* uses a fact — cites a retrieved fact ("[2]") or repeats one of its figures;
* question-answer similarity — cosine of the retriever's sentence embeddings, median over answers.

Every answer is written to ``answers.jsonl`` (read them: the counts only say where to look).
``penalty_scope`` "all" is transformers' default (prompt tokens penalised and n-gram-banned too);
"generated" applies the penalty and the ban to the answer's own tokens only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (name, repetition_penalty, no_repeat_ngram_size, penalty_scope)
CONFIGS = [
    ("greedy", 1.0, 0, "all"),
    ("rp1.15+ng4 all", 1.15, 4, "all"),
    ("rp1.15+ng4 gen", 1.15, 4, "generated"),
    ("rp1.1 gen", 1.1, 0, "generated"),
    ("rp1.05+ng6 gen", 1.05, 6, "generated"),
    ("ng5 gen", 1.0, 5, "generated"),
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


_FIG = re.compile(r"\d[\d,.]*")


def uses_fact(text: str, facts: list) -> bool:
    if re.search(r"\[\d\]", text):
        return True
    figs = {m.group(0).rstrip(".,") for f in facts for m in _FIG.finditer(f["statement"])}
    figs = {x for x in figs if len(x) >= 2}
    return any(x in text for x in figs)


def score(records: list[dict]) -> dict:
    from studyabroadgpt.kb.search import embed
    from studyabroadgpt.serve.checks import answer_off_topic, find_degenerate, find_loops

    names = list(dict.fromkeys(c for r in records for c in r["answers"]))
    out = {}
    for name in names:
        rows = [(r, r["answers"][name]) for r in records if name in r["answers"]]
        vecs = embed([r["query"] for r, _ in rows] + [a["text"] or "-" for _, a in rows])
        n = len(rows)
        sims = [float(vecs[i] @ vecs[n + i]) for i in range(n)]
        s = {"answers": n, "looping": 0, "degenerate": 0, "off_topic": 0, "uses_fact": 0, "clean_on_topic": 0,
             "tokens": sum(a["tokens"] for _, a in rows), "seconds": sum(a["seconds"] for _, a in rows),
             "qa_similarity_median": round(statistics.median(sims), 3), "bad": []}
        for (r, a), sim in zip(rows, sims):
            loop, deg = bool(find_loops(a["text"])), find_degenerate(a["text"])
            off = answer_off_topic(r["query"], a["text"])
            s["looping"] += loop
            s["degenerate"] += bool(deg)
            s["off_topic"] += bool(off)
            s["uses_fact"] += uses_fact(a["text"], r["facts"])
            s["clean_on_topic"] += not (loop or deg or off)
            if deg:
                s["bad"].append({"id": r["id"], "why": [d.to_dict() for d in deg][:3]})
        out[name] = s
    return out


def markdown(summary: dict) -> str:
    lines = [f"{summary['prompts']} real-style prompts, max_tokens {summary['max_tokens']}, adapter "
             f"{summary.get('adapter') or 'none'}; load {summary['load_start']} -> {summary['load_end']}", "",
             "| decoding | looping | degenerate | off topic | clean and on topic | uses a fact | q-a similarity "
             "(median) | tokens/s |", "|---|---|---|---|---|---|---|---|"]
    for name, s in summary["configs"].items():
        n = s["answers"]
        lines.append(f"| {name} | {s['looping']}/{n} | {s['degenerate']}/{n} | {s['off_topic']}/{n} | "
                     f"{s['clean_on_topic']}/{n} | {s['uses_fact']}/{n} | {s['qa_similarity_median']} | "
                     f"{s['tokens'] / max(s['seconds'], 1e-9):.1f} |")
    return "\n".join(lines) + "\n"


def _write(out: Path, records: list[dict], summary: dict) -> None:
    """Every answer so far (a run cut short on a busy machine keeps what it generated; --rescore scores it)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "answers.jsonl", "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--configs", default=None, help="comma-separated names of CONFIGS to run (default: all)")
    ap.add_argument("--out", default="runs/bench_decoding")
    ap.add_argument("--rescore", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_answers import load, pick_prompts

    out = Path(args.out)
    if args.rescore:
        records = [json.loads(x) for x in (out / "answers.jsonl").read_text().splitlines() if x.strip()]
        summary = json.loads((out / "summary.json").read_text())
        summary["configs"] = score(records)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
        (out / "summary.md").write_text(markdown(summary))
        print(markdown(summary))
        return

    from studyabroadgpt.eval.prompts import messages_of
    from studyabroadgpt.serve.answer import Answerer
    from studyabroadgpt.serve.generation import GenParams
    from studyabroadgpt.serve.grounding import retrieval_query
    from studyabroadgpt.serve.hf_engine import load_hf_generator

    configs = [c for c in CONFIGS if not args.configs or c[0] in args.configs.split(",")]
    rows = pick_prompts(args.limit)
    answerer = Answerer.from_kb(mode="generate")
    turns = [answerer.prepare(messages_of(r), mode="generate") for r in rows]
    records = [{"id": r["id"], "category": r["category"], "prompt": r["prompt"],
                "query": retrieval_query(messages_of(r)),
                "facts": [{"id": s.fact.id, "statement": s.fact.statement} for s in t.sources], "answers": {}}
               for r, t in zip(rows, turns)]
    gen = load_hf_generator("default", adapter=args.adapter, max_batch=args.batch)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(gen.start())
    load_start = load()
    try:
        for i in range(0, len(turns), args.batch):
            chunk = turns[i:i + args.batch]
            for name, rp, ng, scope in configs:
                params = GenParams(max_tokens=args.max_tokens, repetition_penalty=rp, no_repeat_ngram_size=ng,
                                   penalty_scope=scope)
                t0 = time.perf_counter()
                results = loop.run_until_complete(_run(gen, chunk, params))
                dt = time.perf_counter() - t0
                for rec, (text, n) in zip(records[i:i + args.batch], results):
                    rec["answers"][name] = {"text": text, "tokens": n, "seconds": dt / len(chunk)}
                print(f"batch {i // args.batch}: {name} done in {dt:.0f} s", flush=True)
                _write(out, records, {"prompts": len(rows), "max_tokens": args.max_tokens, "adapter": args.adapter,
                                      "load_start": load_start, "load_end": load(), "configs": {}})
    finally:
        loop.run_until_complete(gen.close())
        loop.close()
    summary = {"prompts": len(rows), "max_tokens": args.max_tokens, "adapter": args.adapter,
               "load_start": load_start, "load_end": load(), "configs": {}}
    _write(out, records, summary)
    summary["configs"] = score(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    (out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
