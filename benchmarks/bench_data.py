"""Data-pipeline throughput: validate → clean → dedup → split on N generated conversations.

    .venv/bin/python benchmarks/bench_data.py --n 100000
    .venv/bin/python benchmarks/bench_data.py --n 100000 --compare /work/before/src --repeat 3
    git archive <commit> src | tar -x -C /tmp/prev && bench_data.py --compare /tmp/prev/src   # any earlier commit

With ``--compare SRC`` the same generated file is run by this tree and by another checkout's ``src`` (e.g. the
starting commit), alternating runs (before, after, before, after…) in fresh processes so that a busy machine
weighs on both alike; the table gives per-stage medians and the 1-minute load average at each run. The two
must keep the same records, clusters and split (the fingerprints printed at the end); the benchmark exits
non-zero when they do not.

Generates a ShareGPT JSONL file with realistic structure (4–6 turns, markdown answers of ~60–150 words), 5% exact
duplicates, 5% near duplicates (the same question for another university) and 1% broken records, then runs each
stage the way the CLI does (reading the previous stage's file) and prints conversations/s and the peak RSS of the
process during each stage. The whole chain's aim is under 60 s on 2 cores (issue 16; 40 s on session 4's
2-core avx512 EPYC, docs/data.md).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from studyabroadgpt.data.dedup import dedup
from studyabroadgpt.data.io import write_conversations
from studyabroadgpt.data.load import load_valid
from studyabroadgpt.data.split import split

UNIS = ["Oxford", "Cambridge", "Imperial", "UCL", "Edinburgh", "Toronto", "McGill", "UBC", "Melbourne", "Sydney",
        "TU Munich", "Heidelberg", "Trinity College Dublin", "UCD", "Delft", "Amsterdam", "Auckland", "Otago"]
TOPICS = ["student_visa", "proof_of_funds", "english_tests", "work_rights", "health_cover", "scholarships",
          "tuition_costs", "accommodation", "post_study_work", "application_timelines"]
WORDS = ("application deadline tuition budget visa interview embassy transcript reference portfolio scholarship "
         "insurance accommodation campus semester credit module research supervisor funding loan rent transport "
         "deposit bank statement passport biometrics appointment offer conditional unconditional enrolment").split()


def make_conversation(i: int, rng: random.Random) -> dict:
    topic = rng.choice(TOPICS)
    uni = rng.choice(UNIS)
    turns = []
    for k in range(rng.choice([2, 2, 3])):
        q = f"Question {i}.{k}: what should I know about {topic.replace('_', ' ')} at {uni} " + \
            " ".join(rng.choices(WORDS, k=4)) + "?"
        body = " ".join(rng.choices(WORDS, k=rng.randint(50, 140)))
        a = f"## {topic.replace('_', ' ').title()}\n\n- {body[:120]}\n- {body[120:]}\n\n1. Check the official page."
        turns += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    return {"id": f"c{i}", "topic": topic, "conversations": turns}


def generate(n: int, path: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    rows: list[str] = []
    base: list[dict] = []
    for i in range(n):
        r = rng.random()
        if r < 0.05 and base:  # exact duplicate
            row = dict(rng.choice(base), id=f"c{i}")
        elif r < 0.10 and base:  # near duplicate: same conversation, another university named
            src = rng.choice(base)
            row = json.loads(json.dumps(src).replace(src["conversations"][0]["value"].split(" at ")[1].split(" ")[0],
                                                     rng.choice(UNIS)))
            row["id"] = f"c{i}"
        elif r < 0.11:  # broken records: bad JSON, unknown role, empty answer
            rows.append(rng.choice(['{"conversations": [{"from": "human", "val',
                                    json.dumps({"conversations": [{"from": "robot", "value": "x"}]}),
                                    json.dumps({"conversations": [{"from": "human", "value": "q"},
                                                                  {"from": "gpt", "value": " "}]})]))
            continue
        else:
            row = make_conversation(i, rng)
            base.append(row)
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")


class PeakRSS:
    """Samples the memory of this process plus its worker processes every 20 ms while a stage runs.

    Two sums: RSS, and PSS (proportional set size: a page shared by k processes counts 1/k in each). Forked
    workers share the parent's pages, and each one's RSS counts all of them, so the RSS sum counts the parent's
    heap once per worker too; the PSS sum is the memory the stage really holds. Both are reported.
    """

    def __enter__(self):
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self.peak_pss = self._pss(self.proc)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    @staticmethod
    def _pss(p) -> int:
        try:
            return p.memory_full_info().pss
        except (psutil.Error, AttributeError):  # not Linux, or the worker just ended
            return 0

    def _sample(self) -> tuple[int, int]:
        rss, pss = self.proc.memory_info().rss, self._pss(self.proc)
        for child in self.proc.children(recursive=True):
            try:
                rss += child.memory_info().rss
            except psutil.Error:
                continue
            pss += self._pss(child)
        return rss, pss

    def _run(self):
        while not self._stop.wait(0.02):
            rss, pss = self._sample()
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.peak_pss = max(self.peak_pss, self._pss(self.proc))


def _cpu() -> float:
    """CPU seconds of this process and of its finished worker processes (multiprocessing pools)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_stages(raw: Path, work: Path) -> dict:
    """The four stages the way the CLI runs them; works with this tree's and the starting commit's API."""
    results = []

    def stage(name, fn, n_in):
        with PeakRSS() as mem:
            t0, c0 = time.perf_counter(), _cpu()
            out = fn()
            dt, cpu = time.perf_counter() - t0, _cpu() - c0
        results.append({"stage": name, "n": n_in, "wall_s": round(dt, 2), "cpu_s": round(cpu, 2),
                        "peak_rss_mb": round(mem.peak / 2**20), "peak_pss_mb": round(mem.peak_pss / 2**20)})
        return out

    def do_validate():
        # load_valid: the validated read every command (`sagpt data validate`, train, quickstart) goes through
        loaded = load_valid(raw, quarantine=work / "quarantine.jsonl")
        write_conversations(loaded.conversations, work / "valid.jsonl")
        return len(loaded.conversations), loaded.rejected, loaded.quarantined

    n = sum(1 for _ in open(raw, "rb"))
    valid, rejected, quarantined = stage("validate", do_validate, n)

    def do_clean():
        loaded = load_valid(work / "valid.jsonl", clean=True)  # `sagpt data clean`'s read
        write_conversations(loaded.conversations, work / "clean.jsonl")
        return loaded.conversations

    cleaned = stage("clean", do_clean, valid)

    def do_dedup():
        res = dedup(cleaned, threshold=0.8)
        write_conversations(res.kept, work / "dedup.jsonl")
        return res

    deduped = stage("dedup", do_dedup, len(cleaned))
    split_res = stage("split", lambda: split(deduped.kept, test_size=0.15, seed=42), len(deduped.kept))
    return {"stages": results, "load_1m": round(os.getloadavg()[0], 2),
            "counts": {"records": n, "valid": valid, "rejected": rejected, "exact_dups": deduped.exact_removed,
                       "near_dups": deduped.near_removed, "train": len(split_res.train),
                       "test": len(split_res.test), "cross_split_pairs": split_res.cross_pairs},
            # what "same results" means: the same records kept, the same clusters, the same split
            "fingerprint": {"quarantine": _digest(json.dumps(quarantined, sort_keys=True, default=str)),
                            # the written files byte for byte: same records, same cleaned texts, same order
                            "valid.jsonl": _file_digest(work / "valid.jsonl"),
                            "clean.jsonl": _file_digest(work / "clean.jsonl"),
                            "kept": _digest(c.id for c in deduped.kept),
                            "clusters": _digest(json.dumps(deduped.clusters, sort_keys=True)),
                            "test": _digest(c.id for c in split_res.test)}}


def _file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _digest(items) -> str:
    import hashlib

    h = hashlib.sha256()
    for x in ([items] if isinstance(items, str) else items):
        h.update(str(x).encode() + b"\0")
    return h.hexdigest()[:12]


def _print_table(title: str, res: dict) -> None:
    print(f"\n{title}  (load {res['load_1m']})")
    print(f"{'stage':<10}{'conversations':>15}{'wall s':>9}{'cpu s':>9}{'conv/s':>10}{'peak RSS MB':>13}"
          f"{'peak PSS MB':>13}")
    for r in res["stages"]:
        print(f"{r['stage']:<10}{r['n']:>15,}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}{r['n'] / r['wall_s']:>10,.0f}"
              f"{r['peak_rss_mb']:>13,}{r.get('peak_pss_mb', 0):>13,}")
    total = sum(r["wall_s"] for r in res["stages"])
    print(f"{'total':<10}{res['counts']['records']:>15,}{total:>9.1f}{sum(r['cpu_s'] for r in res['stages']):>9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--compare", type=Path, default=None, help="another checkout's src/ to run interleaved")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write all runs here")
    ap.add_argument("--_stages", type=Path, default=None, help=argparse.SUPPRESS)  # internal: one run, JSON out
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-data-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw.jsonl"
    if args._stages:
        args._stages.write_text(json.dumps(run_stages(raw, work / args._stages.stem)))
        return
    if not raw.exists() or sum(1 for _ in open(raw, "rb")) != args.n:
        t = time.perf_counter()
        generate(args.n, raw)
        print(f"generated {args.n:,} records ({raw.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")
    impls = {"after": Path(__file__).resolve().parents[1] / "src"}
    if args.compare:
        impls = {"before": args.compare.resolve(), **impls}
    runs: dict[str, list[dict]] = {k: [] for k in impls}
    for rep in range(args.repeat):
        for name, src in impls.items():  # interleaved: before, after, before, after…
            out = work / f"{name}-{rep}.json"
            (work / out.stem).mkdir(exist_ok=True)
            env = {**os.environ, "PYTHONPATH": str(src)}
            subprocess.run([sys.executable, __file__, "--n", str(args.n), "--workdir", str(work), "--_stages",
                            str(out)], env=env, check=True)
            res = json.loads(out.read_text())
            runs[name].append(res)
            _print_table(f"{name} run {rep + 1}", res)
    print("\nmedians (wall s / cpu s / peak RSS MB / peak PSS MB, both summed over the process and its workers), "
          "load at each run in brackets")
    stages = [r["stage"] for r in next(iter(runs.values()))[0]["stages"]]
    for name, rs in runs.items():
        cells = []
        for i, st in enumerate(stages):
            cells.append(f"{st} {statistics.median(r['stages'][i]['wall_s'] for r in rs):.1f}/"
                         f"{statistics.median(r['stages'][i]['cpu_s'] for r in rs):.1f}/"
                         f"{max(r['stages'][i]['peak_rss_mb'] for r in rs)}/"
                         f"{max(r['stages'][i].get('peak_pss_mb', 0) for r in rs)}")
        total = statistics.median(sum(s["wall_s"] for s in r["stages"]) for r in rs)
        print(f"{name:>7}: " + "  ".join(cells) + f"  total {total:.1f} s  [loads {[r['load_1m'] for r in rs]}]")
    for name, rs in runs.items():
        print(f"{name:>7} results: {rs[0]['counts']} {rs[0]['fingerprint']}")
    if len(runs) == 2:
        a, b = runs.values()
        same = a[0]["fingerprint"] == b[0]["fingerprint"] and a[0]["counts"] == b[0]["counts"]
        print("same records kept, same clusters, same split:", same)
        if not same:  # a faster chain that changes what is kept is a bug, not a speed-up
            sys.exit("results differ from the --compare implementation")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
