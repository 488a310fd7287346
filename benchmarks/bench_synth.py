"""Synthesis throughput and dataset shape: `synth --n 2500 --seed 0` on the shipped knowledge base.

    .venv/bin/python benchmarks/bench_synth.py --n 2500 --seed 0

Reports conversations/s and audited answers/s of the template writer (the audit of every answer included), peak
RSS, the quarantine count, the near-duplicate rate (MinHash Jaccard >= 0.8, as `data dedup` measures it), and the
balance of the planner: how evenly conversations spread over destinations, topics and persona degree levels.
"""
from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

from studyabroadgpt.data.dedup import dedup
from studyabroadgpt.kb.store import load_kb
from studyabroadgpt.synth.generate import synthesize
from studyabroadgpt.utils import atomic_write_json


def peak_rss(stop: threading.Event, out: list[int]) -> None:
    proc = psutil.Process()
    while not stop.is_set():
        out[0] = max(out[0], proc.memory_info().rss)
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_synth"))
    args = ap.parse_args()

    kb = load_kb()
    rss = [0]
    stop = threading.Event()
    watcher = threading.Thread(target=peak_rss, args=(stop, rss), daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    result = synthesize(kb, args.n, seed=args.seed)
    synth_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    dd = dedup(result.conversations, threshold=0.8)
    dedup_s = time.perf_counter() - t1
    stop.set()
    watcher.join()

    convs = result.conversations
    dests = Counter(c.metadata["destination"] for c in convs)
    topics = Counter(c.topic for c in convs)
    levels = Counter(c.metadata["persona"]["degree_level"] for c in convs)
    follow_ups = Counter(len(c.turns) // 2 - 1 for c in convs)
    words = [len(t.text.split()) for c in convs for t in c.turns if t.role == "assistant"]
    report = {
        "n": args.n, "seed": args.seed, "kb_version": kb.version, "seconds": round(synth_s, 2),
        "conversations_per_s": round(len(convs) / synth_s, 1),
        "audited_answers_per_s": round(result.audited_answers / synth_s, 1),
        "kept": len(convs), "quarantined": len(result.quarantine), "audited_answers": result.audited_answers,
        "near_duplicate_rate": (dd.near_removed + dd.exact_removed) / max(1, len(convs)),
        "dedup_seconds": round(dedup_s, 2), "peak_rss_mb": round(rss[0] / 2**20),
        "destinations": dict(dests), "opening_topics": dict(topics), "degree_levels": dict(levels),
        "follow_ups": dict(sorted(follow_ups.items())),
        "answer_words_mean": round(sum(words) / max(1, len(words)), 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "results.json", report)
    print(f"{report['kept']} kept / {report['quarantined']} quarantined in {synth_s:.1f}s "
          f"({report['conversations_per_s']} conv/s, {report['audited_answers_per_s']} audited answers/s), "
          f"peak RSS {report['peak_rss_mb']} MB")
    print(f"near-duplicate rate {report['near_duplicate_rate']:.2%} (dedup {dedup_s:.1f}s); "
          f"follow-ups {report['follow_ups']}; mean answer {report['answer_words_mean']} words")
    print(f"destinations {dict(sorted(dests.items()))}")
    print(f"degree levels {dict(sorted(levels.items()))}; opening topics min/max "
          f"{min(topics.values())}/{max(topics.values())}")


if __name__ == "__main__":
    main()
