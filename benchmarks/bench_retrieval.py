"""Retrieval quality and cost on the shipped knowledge base (facts + guidance) over tests/kb/queries.yaml.

Reports, for the labelled set:

* recall@5 — share of each query's relevant entries found in the top 5 (the ranking alone);
* kept recall@5 — the same, counting only hits at or above the calibrated relevance threshold;
* false-retrieval rate — share of questions about uncovered destinations/institutions that still get a hit at or
  above the threshold (before calibration every such question got five "relevant" hits);
* the same figures under 5-fold cross-validation (fit on 4/5 of the queries, measure on the held-out fifth);
* hit@1 / hit@3 of the fused order against the order ``search`` serves (the top-10 re-ordered by relevance,
  whose features say whether an entry fills the slot the question asks about), held out and on the shipped
  calibration, overall and for the labelled ``specific`` rule questions;
* latency of a search with relevance (scope detection + features) against the plain fused ranking, interleaved,
  median of 3 rounds, with the machine's load average next to it (the machine is shared: read ratios).

Writes ``bench_retrieval.json`` and ``bench_retrieval.png`` to ``--out``.

    python benchmarks/bench_retrieval.py --out runs/bench_retrieval
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from studyabroadgpt.kb.relevance import (candidate_rows, cross_validate, hit_rates,  # noqa: E402
                                         load_queries, metrics_at, rerank_hits)
from studyabroadgpt.kb.search import Retriever, embed  # noqa: E402
from studyabroadgpt.kb.store import load_kb  # noqa: E402
from studyabroadgpt.utils import atomic_write_bytes, atomic_write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", default=str(ROOT / "tests" / "kb" / "queries.yaml"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_retrieval"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-queries", type=int, default=100)
    args = ap.parse_args()

    queries = load_queries(args.queries)
    kb = load_kb()
    retriever = Retriever.from_kb(kb)
    cal = retriever.calibration
    if cal is None:
        sys.exit("no calibration shipped: run `sagpt kb calibrate` first")
    X, y, qi, ranks = candidate_rows(retriever, queries)
    probs = np.array([cal.relevance(x) for x in X])
    shipped = metrics_at(probs, y, qi, ranks, queries, cal.threshold)
    by_kind = {}
    for kind in sorted({q.kind for q in queries}):
        idx = [n for n, q in enumerate(queries) if q.kind == kind]
        remap = {old: new for new, old in enumerate(idx)}
        rows = np.isin(qi, idx)
        by_kind[kind] = metrics_at(probs[rows], y[rows], np.array([remap[i] for i in qi[rows]]), ranks[rows],
                                   [queries[i] for i in idx], cal.threshold)
    # before calibration: every top-5 hit counts (threshold 0), so every uncovered question is a false retrieval
    before = metrics_at(np.ones_like(probs), y, qi, ranks, queries, 0.0)
    cv = cross_validate(X, y, qi, ranks, queries)
    sweep = [metrics_at(probs, y, qi, ranks, queries, float(t)) for t in np.round(np.arange(0.02, 0.95, 0.02), 2)]
    latency = _latency(retriever, [q.query for q in queries[:args.latency_queries]], args.rounds)
    hits = {"shipped": rerank_hits(probs, y, qi, ranks, queries), "held_out": cv["hits"],
            "served": {k: {m: v for m, v in hit_rates(retriever, queries, kinds).items() if m != "misses"}
                       for k, kinds in (("all", None), ("specific", ["specific"]))}}

    summary = {"kb_version": kb.version, "entries": len(kb.entries), "facts": len(kb.facts),
               "guidance": len(kb.guidance), "queries": len(queries),
               "queries_by_kind": {k: sum(q.kind == k for q in queries) for k in sorted({q.kind for q in queries})},
               "threshold": cal.threshold, "shipped_calibration": shipped, "by_kind": by_kind,
               "before_calibration": before, "cross_validated": cv, "hits": hits, "latency": latency,
               "load_average": os.getloadavg(), "cpu_count": os.cpu_count()}
    out = Path(args.out)
    atomic_write_json(out / "bench_retrieval.json", summary)
    _plot(summary, probs, y, qi, queries, sweep, out / "bench_retrieval.png")
    print(json.dumps({k: summary[k] for k in ("queries", "threshold", "latency", "load_average")}, indent=1))
    for name, m in (("before calibration", before), ("shipped (train)", shipped), ("5-fold held out", cv)):
        print(f"{name:>20}: recall@5 {m['recall_at_5']:.3f}  kept recall@5 {m['kept_recall_at_5']:.3f}  "
              f"false retrieval {m['false_retrieval_rate']:.3f} ({m['uncovered_queries']} uncovered)")
    for kind, m in cv["by_kind"].items():
        print(f"{'held out ' + kind:>20}: recall@5 {m['recall_at_5']:.3f}  kept {m['kept_recall_at_5']:.3f}  "
              f"false {m['false_retrieval_rate']:.3f} (n={m['queries']})")
    for kind, h in cv["hits"].items():
        print(f"{'held out ' + kind:>20}: hit@1 {h['fused_hit_at_1']:.3f} → {h['hit_at_1']:.3f}  hit@3 "
              f"{h['fused_hit_at_3']:.3f} → {h['hit_at_3']:.3f} (fused → served order, n={h['queries']})")
    print(f"report: {out / 'bench_retrieval.json'} and {out / 'bench_retrieval.png'}")


def _latency(retriever: Retriever, queries: list[str], rounds: int) -> dict:
    """ms per query: fused ranking alone vs search with calibrated relevance, same query vectors, interleaved."""
    vecs = embed(queries)
    retriever.search(queries[0], k=5, query_vec=vecs[0])  # warm the world gazetteer and regexes
    plain, full = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for q, v in zip(queries, vecs):
            np.argsort(-retriever.fused_scores(q, query_vec=v))[:5]
        plain.append((time.perf_counter() - t0) * 1000 / len(queries))
        t0 = time.perf_counter()
        for q, v in zip(queries, vecs):
            retriever.search(q, k=5, query_vec=v)
        full.append((time.perf_counter() - t0) * 1000 / len(queries))
    p, f = statistics.median(plain), statistics.median(full)
    return {"fused_ranking_ms": round(p, 3), "search_with_relevance_ms": round(f, 3),
            "added_ms": round(f - p, 3), "rounds": rounds, "queries": len(queries)}


def _plot(summary, probs, y, qi, queries, sweep, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(16, 4.5))
    kinds = list(summary["cross_validated"]["by_kind"])
    cv = summary["cross_validated"]["by_kind"]
    x = np.arange(len(kinds))
    a1.bar(x - 0.2, [cv[k]["recall_at_5"] for k in kinds], 0.4, label="recall@5 (ranking)", color="#457b9d")
    a1.bar(x + 0.2, [cv[k]["kept_recall_at_5"] if k != "uncovered" else cv[k]["false_retrieval_rate"]
                     for k in kinds], 0.4, label="kept recall@5 / false retrieval (uncovered)", color="#e76f51")
    a1.set_xticks(x, [f"{k}\n(n={cv[k]['queries']})" for k in kinds])
    a1.set_ylim(0, 1.05)
    a1.set_title("5-fold held-out figures by query kind")
    a1.legend(fontsize=7)
    uncovered = np.array([not queries[i].relevant for i in qi])
    bins = np.linspace(0, 1, 26)
    a2.hist(probs[(y == 1)], bins=bins, alpha=0.7, label="relevant hits", color="#2a9d8f")
    a2.hist(probs[(y == 0) & ~uncovered], bins=bins, alpha=0.6, label="other hits (covered questions)",
            color="#adb5bd")
    a2.hist(probs[uncovered], bins=bins, alpha=0.7, label="hits for uncovered questions", color="#e76f51")
    a2.axvline(summary["threshold"], color="black", linestyle="--", label=f"threshold {summary['threshold']:.2f}")
    a2.set_yscale("log")
    a2.set_xlabel("calibrated relevance")
    a2.set_title("Relevance of top-10 hits (shipped calibration)")
    a2.legend(fontsize=7)
    ts = [m["threshold"] for m in sweep]
    a3.plot(ts, [m["kept_recall_at_5"] for m in sweep], label="kept recall@5", color="#2a9d8f")
    a3.plot(ts, [m["false_retrieval_rate"] for m in sweep], label="false retrieval (uncovered)", color="#e76f51")
    a3.axvline(summary["threshold"], color="black", linestyle="--")
    a3.set_xlabel("threshold")
    a3.set_ylim(0, 1.05)
    a3.set_title("Threshold sweep (training set)")
    a3.legend(fontsize=7)
    fig.suptitle(f"Retrieval on {summary['entries']} entries ({summary['facts']} facts, {summary['guidance']} "
                 f"guidance), {summary['queries']} labelled queries; load {summary['load_average'][0]:.1f}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


if __name__ == "__main__":
    main()
