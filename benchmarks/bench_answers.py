"""What a student reads, before and after: the real-style prompt set through the answer path.

    python benchmarks/bench_answers.py --limit 24 --max-tokens 256 --out runs/bench_answers
    python benchmarks/bench_answers.py --adapter /work/before/runs/quickstart/train/adapter ...

For each prompt (spread over every category of ``eval/prompts/real_style.jsonl``) it generates ONE raw answer
per system and scores the served text with the same checks the server runs (``serve/checks.py``):

* ``before`` — the old code (``--before-src``, default /work/before/src) in a separate process: its prompt,
  its greedy decoding, its gate;
* ``after`` — this tree: the new decoding defaults, then the answer path in ``generate`` and ``auto`` mode
  (both from the same raw text), and ``compose`` (no model).

Reported per system: looping answers, URLs outside the KB, unverified named entities left unmarked,
off-topic citations, out-of-scope questions answered honestly, and for ``after`` the answer-path latency
(retrieval + gate + compose) against a 256-token generation, measured interleaved in the same run (median of
>= 3) with the machine's load average recorded next to it. Writes ``answers.jsonl``, ``summary.json`` and
``summary.md`` under ``--out``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def pick_prompts(limit: int) -> list[dict[str, Any]]:
    """``limit`` rows, round-robin over categories so every kind of question is represented."""
    from studyabroadgpt.eval.prompts import CATEGORIES, load_real_style

    rows = load_real_style()
    by: dict[str, list[dict]] = {c: [r for r in rows if r["category"] == c] for c in CATEGORIES}
    out: list[dict] = []
    while len(out) < min(limit, len(rows)):
        for c in CATEGORIES:
            if by[c] and len(out) < limit:
                out.append(by[c].pop(0))
    return out


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# ----------------------------------------------------------------------------------------------- before

BEFORE_SCRIPT = r'''
import asyncio, json, sys
from studyabroadgpt.serve.answer import Answerer
from studyabroadgpt.serve.generation import GenParams
from studyabroadgpt.serve.hf_engine import load_hf_generator
rows = json.load(open(sys.argv[1])); adapter = sys.argv[3] or None; max_tokens = int(sys.argv[4])
gen = load_hf_generator("default", adapter=adapter)
answerer = Answerer.from_kb()
async def main():
    await gen.start()
    turns = [answerer.prepare(r["messages"]) for r in rows]
    async def one(t):
        parts = []
        async for p in gen.stream(t.model_messages, GenParams(max_tokens=max_tokens)):
            parts.append(p.text)
        return "".join(parts)
    raws = await asyncio.gather(*[one(t) for t in turns])
    out = []
    for r, t, raw in zip(rows, turns, raws):
        f = answerer.finish(t, raw)
        out.append({"id": r["id"], "raw": raw, "content": f.content,
                    "cited": [s["id"] for s in f.sources if s["cited"]]})
    await gen.close()
    json.dump(out, open(sys.argv[2], "w"))
asyncio.run(main())
'''


def run_before(rows: list[dict], before_src: str, adapter: str | None, max_tokens: int, out: Path) -> list[dict]:
    inp, res = out / "before_in.json", out / "before_out.json"
    inp.write_text(json.dumps([{"id": r["id"], "messages": _messages(r)} for r in rows]))
    env = {**os.environ, "PYTHONPATH": before_src, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", BEFORE_SCRIPT, str(inp), str(res), adapter or "", str(max_tokens)],
                   env=env, check=True)
    return json.loads(res.read_text())


def _messages(row: dict) -> list[dict]:
    from studyabroadgpt.eval.prompts import messages_of

    return messages_of(row)


# ----------------------------------------------------------------------------------------------- after


async def _generate_all(gen: Any, turns: list[Any], max_tokens: int) -> list[str]:
    from studyabroadgpt.serve.answer import collect
    from studyabroadgpt.serve.generation import GenParams

    params = GenParams(max_tokens=max_tokens)
    done = await asyncio.gather(*[collect(gen, t, params) for t in turns])
    return [text for text, _ in done]


def run_after(rows: list[dict], adapter: str | None, max_tokens: int) -> tuple[list[dict], dict]:
    from studyabroadgpt.serve.answer import Answerer
    from studyabroadgpt.serve.hf_engine import load_hf_generator

    gen = load_hf_generator("default", adapter=adapter)
    answerer = Answerer.from_kb(mode="auto")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(gen.start())
    out: list[dict] = []
    path_ms: list[float] = []
    try:
        gen_turns = [answerer.prepare(_messages(r), mode="generate") for r in rows]
        raws = loop.run_until_complete(_generate_all(gen, gen_turns, max_tokens))
        for r, t, raw in zip(rows, gen_turns, raws):
            rec: dict[str, Any] = {"id": r["id"], "raw": raw}
            for mode in ("generate", "auto", "compose"):
                t0 = time.perf_counter()
                turn = answerer.prepare(_messages(r), mode=mode)
                final = answerer.finish(turn, raw if turn.generates else "")
                ms = (time.perf_counter() - t0) * 1000
                if mode == "auto":
                    path_ms.append(ms)
                rec[mode] = {"content": final.content, "served_mode": final.mode,
                             "cited": [s["id"] for s in final.sources if s["cited"]],
                             "fallback": final.gate.get("fallback_reason")}
            out.append(rec)
        # A 256-token generation, three times, interleaved with the answer path on the same prompt.
        from studyabroadgpt.serve.answer import collect
        from studyabroadgpt.serve.generation import GenParams

        gen_ms, path_again, tokens = [], [], []
        probe = next(r for r in rows if r["category"] == "policy_rule")

        async def timed(turn):
            # The engine's own stream (no loop stop): the model may still end before 256 tokens at its EOS,
            # so the time is scaled to 256 tokens from the tokens it did generate (prefill included).
            parts, n = [], 0
            async for p in gen.stream(turn.model_messages, GenParams(max_tokens=256)):
                parts.append(p.text)
                n = p.completion_tokens or n
            return "".join(parts), n

        for _ in range(3):
            turn = answerer.prepare(_messages(probe), mode="generate")
            t0 = time.perf_counter()
            raw, n = loop.run_until_complete(timed(turn))
            gen_ms.append((time.perf_counter() - t0) * 1000 * 256 / max(n, 1))
            tokens.append(n)
            t0 = time.perf_counter()
            answerer.finish(answerer.prepare(_messages(probe), mode="auto"), raw)
            path_again.append((time.perf_counter() - t0) * 1000)
        timing = {"answer_path_ms_median": statistics.median(path_ms + path_again),
                  "answer_path_ms_probe": path_again, "generation_256_ms": gen_ms,
                  "generation_256_tokens": tokens,
                  "ratio": statistics.median(path_again) / statistics.median(gen_ms), "load": load()}
    finally:
        loop.run_until_complete(gen.close())
        loop.close()
    return out, timing


# ----------------------------------------------------------------------------------------------- scoring


def score(rows: list[dict], texts: dict[str, str], cited: dict[str, list[str]]) -> dict[str, Any]:
    from studyabroadgpt.kb.store import load_kb
    from studyabroadgpt.serve.checks import assess, find_degenerate
    from studyabroadgpt.serve.grounding import retrieval_query

    kb = load_kb()
    n = len(rows)
    from studyabroadgpt.kb.slots import policy_subject
    from studyabroadgpt.serve.checks import unsupported_rules
    from studyabroadgpt.serve.gate import sentences

    looping = urls = ents = offtopic = degenerate = rules = 0
    oos_total = oos_honest = 0
    per: dict[str, dict] = {}
    for r in rows:
        text = texts[r["id"]]
        facts = [kb.by_id[i] for i in cited.get(r["id"], []) if i in kb.by_id]
        # A follow-up ("And for Canada?") is about the conversation: judge topic on its last two user turns.
        a = assess(text, retrieval_query(_messages(r)), kb, cited_sources=facts)
        per[r["id"]] = a.to_dict()
        looping += a.looping
        degenerate += bool(find_degenerate(text))
        # A policy answer with a rule sentence in it that none of the facts it cites supports, left unmarked.
        rules += bool(policy_subject(r["prompt"]) and unsupported_rules(text, facts, sentences(text)))
        urls += bool(a.foreign_urls)
        ents += bool(a.unverified_entities)
        offtopic += bool(a.off_topic_citations)
        if r.get("checks", {}).get("out_of_scope"):
            oos_total += 1
            oos_honest += a.says_no_information and not a.off_topic_citations
    return {"answers": n, "looping": looping, "degenerate": degenerate, "with_foreign_urls": urls, "with_unmarked_unverified_names": ents,
            "with_off_topic_citations": offtopic, "with_unsupported_rules": rules, "out_of_scope": oos_total, "out_of_scope_honest": oos_honest,
            "per_answer": per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--before-src", default="/work/before/src")
    ap.add_argument("--skip-before", action="store_true")
    ap.add_argument("--before-from", default=None,
                    help="reuse the old code's answers from an earlier run's before_out.json (same prompts)")
    ap.add_argument("--out", default="runs/bench_answers")
    ap.add_argument("--shard", default=None, metavar="I/N",
                    help="only every N-th prompt from the I-th (0-based): a 110-prompt run on 2 shared cores outlives "
                         "the 25-minute job limit, so it runs as shards merged with --merge")
    ap.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                    help="merge the shards' answers.jsonl into --out and score them together (no model)")
    ap.add_argument("--rescore", action="store_true", help="re-score the answers already in --out (no model)")
    ap.add_argument("--refinish", action="store_true", help="with --rescore: run the current answer path again on "
                    "the stored raw text first")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        return merge(out, [Path(d) for d in args.merge])
    if args.rescore:
        return rescore(out, refinish=args.refinish)
    rows = pick_prompts(args.limit)
    if args.shard:
        i, n = (int(x) for x in args.shard.split("/"))
        rows = rows[i::n]
    started = {"load_start": load(), "prompts": len(rows), "max_tokens": args.max_tokens, "adapter": args.adapter}
    if args.before_from:
        stored = {b["id"]: b for b in json.loads(Path(args.before_from).read_text())}
        missing = [r["id"] for r in rows if r["id"] not in stored]
        if missing:
            raise SystemExit(f"{args.before_from}: no answers for {', '.join(missing)}")
        before = [stored[r["id"]] for r in rows]
        started["before_from"] = args.before_from
    else:
        before = [] if args.skip_before else run_before(rows, args.before_src, args.adapter, args.max_tokens, out)
    after, timing = run_after(rows, args.adapter, args.max_tokens)
    systems: dict[str, dict] = {}
    if before:
        systems["before"] = score(rows, {b["id"]: b["content"] for b in before}, {b["id"]: b["cited"] for b in before})
    for mode in ("generate", "auto", "compose"):
        systems[f"after:{mode}"] = score(rows, {a["id"]: a[mode]["content"] for a in after},
                                         {a["id"]: a[mode]["cited"] for a in after})
    systems["after:raw"] = score(rows, {a["id"]: a["raw"] for a in after}, {})
    if before:
        systems["before:raw"] = score(rows, {b["id"]: b["raw"] for b in before}, {})
    fallbacks = sum(1 for a in after if a["auto"]["served_mode"] == "compose")
    summary = {**started, "load_end": load(), "timing": timing, "auto_served_compose": fallbacks,
               "systems": {k: {kk: vv for kk, vv in v.items() if kk != "per_answer"} for k, v in systems.items()}}
    with open(out / "answers.jsonl", "w") as fh:
        for r in rows:
            b = next((x for x in before if x["id"] == r["id"]), None)
            a = next(x for x in after if x["id"] == r["id"])
            fh.write(json.dumps({"id": r["id"], "category": r["category"], "prompt": r["prompt"],
                                 "expect": r["expect"], "before": b, "after": a,
                                 "checks": {k: v["per_answer"][r["id"]] for k, v in systems.items()}},
                                ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))


def merge(out: Path, shards: list[Path]) -> None:
    """One run from shards (``--shard``): their answers in prompt-set order, the timing and load of each kept."""
    from studyabroadgpt.eval.prompts import load_real_style

    order = {r["id"]: i for i, r in enumerate(load_real_style())}
    recs, parts = [], []
    for d in shards:
        recs += [json.loads(line) for line in (d / "answers.jsonl").read_text().splitlines() if line.strip()]
        parts.append(json.loads((d / "summary.json").read_text()))
    recs.sort(key=lambda r: order[r["id"]])
    with open(out / "answers.jsonl", "w") as fh:
        for rec in recs:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    first = parts[0]
    summary = {**first, "prompts": len(recs), "load_start": " / ".join(p["load_start"] for p in parts),
               "load_end": " / ".join(p["load_end"] for p in parts), "shards": [str(d) for d in shards],
               "shard_timing": [p["timing"] for p in parts]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    rescore(out)


def rescore(out: Path, refinish: bool = False) -> None:
    """Score the stored answers again with the current checks (the generation is the expensive part)."""
    from studyabroadgpt.eval.prompts import load_real_style

    recs = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines() if line.strip()]
    by_id = {r["id"]: r for r in load_real_style()}
    rows = [by_id[r["id"]] for r in recs]
    if refinish:  # the answer path again on the stored raw model text (after an answer-path change; no model)
        from studyabroadgpt.serve.answer import Answerer

        answerer = Answerer.from_kb(mode="auto")
        for rec, row in zip(recs, rows):
            for mode in ("generate", "auto", "compose"):
                turn = answerer.prepare(_messages(row), mode=mode)
                final = answerer.finish(turn, rec["after"]["raw"] if turn.generates else "")
                rec["after"][mode] = {"content": final.content, "served_mode": final.mode,
                                      "cited": [s["id"] for s in final.sources if s["cited"]],
                                      "fallback": final.gate.get("fallback_reason")}
        with open(out / "answers.jsonl", "w") as fh:
            for rec in recs:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    summary = json.loads((out / "summary.json").read_text())
    systems = {}
    if recs[0].get("before"):
        systems["before"] = score(rows, {r["id"]: r["before"]["content"] for r in recs},
                                  {r["id"]: r["before"]["cited"] for r in recs})
    for mode in ("generate", "auto", "compose"):
        systems[f"after:{mode}"] = score(rows, {r["id"]: r["after"][mode]["content"] for r in recs},
                                         {r["id"]: r["after"][mode]["cited"] for r in recs})
    systems["after:raw"] = score(rows, {r["id"]: r["after"]["raw"] for r in recs}, {})
    if recs[0].get("before"):
        systems["before:raw"] = score(rows, {r["id"]: r["before"]["raw"] for r in recs}, {})
    summary["systems"] = {k: {kk: vv for kk, vv in v.items() if kk != "per_answer"} for k, v in systems.items()}
    summary["auto_served_compose"] = sum(r["after"]["auto"]["served_mode"] == "compose" for r in recs)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))


def markdown(s: dict) -> str:
    cols = ["looping", "degenerate", "with_foreign_urls", "with_unmarked_unverified_names", "with_off_topic_citations",
            "with_unsupported_rules", "out_of_scope_honest"]
    lines = [f"Prompts: {s['prompts']} of the real-style set, max_tokens {s['max_tokens']}, adapter "
             f"{s['adapter'] or 'none (default SmolLM2-135M-Instruct)'}; load average {s['load_start']} at start, "
             f"{s['load_end']} at end (2 shared cores).", "",
             "| system | answers | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for name, v in s["systems"].items():
        oos = f"{v['out_of_scope_honest']}/{v['out_of_scope']}"
        vals = [str(v.get(c, "–")) for c in cols[:-1]] + [oos]
        lines.append(f"| {name} | {v['answers']} | " + " | ".join(vals) + " |")
    t = s["timing"]
    lines += ["", f"auto mode served the composed answer for {s['auto_served_compose']} of {s['prompts']} prompts.",
              f"Answer path (retrieval + gate + checks + compose): median {t['answer_path_ms_median']:.0f} ms; "
              f"a 256-token generation: {', '.join(f'{x / 1000:.1f}' for x in t['generation_256_ms'])} s "
              f"(scaled from {t['generation_256_tokens']} tokens generated); ratio {t['ratio']:.1%} (load {t['load']})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
