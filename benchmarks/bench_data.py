"""Data-pipeline throughput: validate → clean → dedup → split on N generated conversations.

    .venv/bin/python benchmarks/bench_data.py --n 100000

Generates a ShareGPT JSONL file with realistic structure (4–6 turns, markdown answers of ~60–150 words), 5% exact
duplicates, 5% near duplicates (the same question for another university) and 1% broken records, then runs each
stage the way the CLI does (reading the previous stage's file) and prints conversations/s and the peak RSS of the
process during each stage. The whole chain's aim is under 2 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

from studyabroadgpt.data.clean import clean_record
from studyabroadgpt.data.dedup import dedup
from studyabroadgpt.data.io import iter_raw, write_conversations
from studyabroadgpt.data.split import split
from studyabroadgpt.data.validate import validate_record

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
    """Samples this process's RSS every 20 ms while a stage runs."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-data-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw.jsonl"
    t = time.perf_counter()
    generate(args.n, raw)
    print(f"generated {args.n:,} records ({raw.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")

    results = []

    def stage(name, fn, n_in):
        with PeakRSS() as mem:
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        results.append((name, n_in, dt, cpu, mem.peak / 2**20))
        return out

    def do_validate():
        good, bad = [], 0
        for rec in iter_raw(raw):
            conv, problems = validate_record(rec)
            if conv is None:
                bad += 1
            else:
                good.append(conv)
        write_conversations(good, work / "valid.jsonl")
        return len(good), bad

    valid, rejected = stage("validate", do_validate, args.n)

    def do_clean():
        changes: Counter = Counter()
        good = [c for c, _ in (clean_record(r, changes) for r in iter_raw(work / "valid.jsonl")) if c is not None]
        write_conversations(good, work / "clean.jsonl")
        return good

    cleaned = stage("clean", do_clean, valid)

    def do_dedup():
        res = dedup(cleaned, threshold=0.8)
        write_conversations(res.kept, work / "dedup.jsonl")
        return res

    deduped = stage("dedup", do_dedup, len(cleaned))
    split_res = stage("split", lambda: split(deduped.kept, test_size=0.15, seed=42), len(deduped.kept))

    total = sum(r[2] for r in results)
    total_cpu = sum(r[3] for r in results)
    print(f"\nrecords {args.n:,}: valid {valid:,}, rejected {rejected:,}, exact dups {deduped.exact_removed:,}, "
          f"near dups {deduped.near_removed:,}, train {len(split_res.train):,}, test {len(split_res.test):,}, "
          f"cross-split near-duplicate pairs {split_res.cross_pairs}")
    # CPU seconds are reported beside wall seconds: on a shared machine wall time includes other people's work.
    print(f"{'stage':<10}{'conversations':>15}{'wall s':>9}{'cpu s':>9}{'conv/s':>10}{'peak RSS MB':>13}")
    for name, n_in, dt, cpu, peak in results:
        print(f"{name:<10}{n_in:>15,}{dt:>9.1f}{cpu:>9.1f}{n_in / dt:>10,.0f}{peak:>13,.0f}")
    print(f"{'total':<10}{args.n:>15,}{total:>9.1f}{total_cpu:>9.1f}{args.n / total:>10,.0f}")


if __name__ == "__main__":
    main()
