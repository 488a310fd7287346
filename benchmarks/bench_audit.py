"""Planted-error benchmark for the claim audit: recall on planted errors, false alarms on clean answers, speed.

    .venv/bin/python benchmarks/bench_audit.py --conversations 300 --seed 0

Clean answers come from the template synthesiser (every one grounded in the shipped KB). Each is then corrupted
in the ways the published StudyAbroadGPT data went wrong:

* ``number``        — a figure changed (money, hours, durations, scores, percentages, dates);
* ``test_swap``     — a score attached to another test ("IELTS 6.5" → "TOEFL 6.5");
* ``invented_scholarship`` / ``invented_visa`` — a plausible name the KB has never heard of, inserted as advice;
* ``misplaced_scheme`` — a real scheme of another country recommended for this one ("Chevening" for Canada).

An error counts as caught only when a flagged (contradicted or unsupported) claim overlaps the planted span, so a
lucky flag elsewhere in the answer does not count. The audit runs in two modes: against the facts the answer was
written from (what the server does), and against the whole KB (what ``sagpt audit`` does on someone else's data),
ranking facts per claim with BM25 and, on a subset, with the hybrid BM25+embedding retrieval. Finally the shared
real sample is audited. Results: ``runs/bench_audit/results.json`` and a PNG plot beside it.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import defaultdict
from pathlib import Path

from studyabroadgpt.kb.audit import Auditor
from studyabroadgpt.kb.claims import extract_claims
from studyabroadgpt.kb.store import load_kb
from studyabroadgpt.significance import wilson_interval
from studyabroadgpt.synth.generate import synthesize
from studyabroadgpt.utils import atomic_write_json, save_figure

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "studyabroadgpt-sample" / "conversations.jsonl"
INVENTED_SCHOLARSHIPS = [
    "Global Leaders Excellence Scholarship", "Commonwealth Future Scholars Award", "Horizon International Grant",
    "Vice-Chancellor's Global Merit Scholarship", "Aurora Women in STEM Fellowship", "Pinnacle Graduate Bursary",
    "International Pathway Excellence Award", "Northern Star Research Fellowship", "Crescent Opportunity Scholarship",
]
INVENTED_VISAS = [
    "Global Talent Graduate Visa", "Skilled Graduate Pathway Visa", "International Graduate Work Visa",
    "Post-Study Employment Permit", "Academic Excellence Residence Permit", "Youth Innovation Route",
    "Fast-Track Study Visa", "Talent Bridge Permit",
]
INSERT_TEMPLATES = [
    "You should also apply for the {name}, which many international students in {country} receive.",
    "Another option is the {name}: it is open to students from {origin}.",
    "Many students in your position use the {name} as well.",
]
TEST_SWAPS = {"IELTS": "TOEFL", "TOEFL": "IELTS", "PTE": "IELTS", "DUOLINGO": "IELTS", "GRE": "GMAT",
              "GMAT": "GRE", "SAT": "ACT", "ACT": "SAT", "UCAT": "MCAT", "MCAT": "UCAT", "TESTDAF": "IELTS",
              "DSH": "IELTS", "CELPIP": "IELTS"}
NUMERIC = ("money", "duration", "score", "percentage", "date")


def clean_items(kb, conversations: int, seed: int) -> list[dict]:
    result = synthesize(kb, conversations, seed=seed)
    items = []
    for conv in result.conversations:
        question = ""
        for t in conv.turns:
            if t.role == "user":
                question = t.text
            else:
                items.append({"id": f"{conv.id}:{len(items)}", "question": question, "answer": t.text,
                              "facts": [kb.by_id[i] for i in t.provenance],
                              "destination": conv.metadata["destination"], "persona": conv.metadata["persona"]})
    return items


def _body_end(text: str) -> int:
    m = re.search(r"^#+\s*Sources", text, re.MULTILINE)
    return m.start() if m else len(text)


def _new_number(rng: random.Random, kind: str, value: dict, old: float) -> float:
    if kind == "money":
        new = old * rng.choice([0.8, 1.1, 1.25, 1.5])
        return float(round(new, -1) if new > 100 else round(new))
    if kind == "duration":
        step = rng.choice([4, 5, 10]) if value.get("unit") == "hours" else rng.choice([1, 2])
        return old + step if rng.random() < 0.6 or old - step <= 0 else old - step
    if kind == "score":
        step = 0.5 if old < 10 else rng.choice([5, 10])
        return old + step * rng.choice([1, 2])
    if kind == "percentage":
        return old + rng.choice([5, 10, -5]) if old > 10 else old + 5
    raise ValueError(kind)


def _fmt(x: float, like: str) -> str:
    if float(x).is_integer():
        return f"{int(x):,}" if "," in like or x >= 10000 else str(int(x))
    return f"{x:g}"


def plant_number(rng: random.Random, item: dict) -> dict | None:
    claims = [c for c in extract_claims(item["answer"]) if c.kind in NUMERIC and c.span[1] <= _body_end(item["answer"])]
    if not claims:
        return None
    c = rng.choice(claims)
    if c.kind == "date":
        m = re.search(r"\b([0-3]?\d)\b", c.text)
        if not m:
            return None
        day = int(m.group(1))
        new_day = day + rng.choice([3, 5, 9]) if day < 19 else day - rng.choice([3, 5, 9])
        new_text = c.text[:m.start()] + str(new_day) + c.text[m.end():]
    else:
        nums = list(re.finditer(r"\d[\d,]*(?:\.\d+)?", c.text))
        if not nums:
            return None
        m = nums[-1] if c.kind == "score" else nums[0]
        old = float(m.group(0).replace(",", ""))
        new_text = c.text[:m.start()] + _fmt(_new_number(rng, c.kind, c.value, old), m.group(0)) + c.text[m.end():]
    return _replace(item, c.span, new_text, "number")


def plant_test_swap(rng: random.Random, item: dict) -> dict | None:
    claims = [c for c in extract_claims(item["answer"]) if c.kind == "score" and c.value["test"] in TEST_SWAPS
              and c.span[1] <= _body_end(item["answer"])]
    for c in claims:
        m = re.match(r"(IELTS|TOEFL|PTE|Duolingo|GRE|GMAT|SAT|ACT|UCAT|MCAT|TestDaF|DSH|CELPIP)", c.text)
        if m:
            swapped = TEST_SWAPS[c.value["test"]]
            return _replace(item, c.span, swapped + c.text[m.end():], "test_swap")
    return None


def plant_insert(rng: random.Random, item: dict, kind: str, kb) -> dict | None:
    from studyabroadgpt.kb.schema import DESTINATIONS

    if kind == "misplaced_scheme":
        others = [e.name for f in kb.facts if f.destination != item["destination"] for e in f.entities
                  if e.type == "scholarship" and re.search(r"Scholarship|Award|Fellowship|Grant", e.name)
                  and item["destination"] not in _dest_words(e.name)]
        if not others:
            return None
        name = rng.choice(sorted(set(others)))
    else:
        name = rng.choice(INVENTED_SCHOLARSHIPS if kind == "invented_scholarship" else INVENTED_VISAS)
    sentence = rng.choice(INSERT_TEMPLATES).format(name=name, country=DESTINATIONS[item["destination"]],
                                                   origin=item["persona"]["origin"])
    text = item["answer"]
    # insert after the first list or paragraph of facts, as a model would add it in passing
    anchor = text.find("\n\n", text.find("[1]"))
    anchor = anchor if 0 <= anchor < _body_end(text) else _body_end(text)
    new_text = text[:anchor] + "\n\n" + sentence + text[anchor:]
    start = new_text.index(name, anchor)
    return {**item, "answer": new_text, "planted": (start, start + len(name)), "kind": kind}


def _dest_words(name: str) -> set[str]:
    from studyabroadgpt.kb.geo import detect_destinations

    return set(detect_destinations(name))


def _replace(item: dict, span: tuple[int, int], new_text: str, kind: str) -> dict:
    a, b = span
    text = item["answer"][:a] + new_text + item["answer"][b:]
    return {**item, "answer": text, "planted": (a, a + len(new_text)), "kind": kind}


def caught(result, planted: tuple[int, int]) -> bool:
    a, b = planted
    return any(c.status != "supported" and c.span[0] < b and a < c.span[1] for c in result.claims)


def run_mode(auditor: Auditor, clean: list[dict], planted: list[dict], with_facts: bool) -> dict:
    def audit(item):
        return auditor.audit_answer(item["answer"], item["question"], facts=item["facts"] if with_facts else None)

    t0 = time.perf_counter()
    false_alarms = sum(audit(item).has_error for item in clean)
    clean_s = time.perf_counter() - t0
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    answer_level = 0
    for item in planted:
        r = audit(item)
        hit = caught(r, item["planted"])
        by_kind[item["kind"]][0] += hit
        by_kind[item["kind"]][1] += 1
        answer_level += r.has_error
    n_p = len(planted)
    hits = sum(h for h, _ in by_kind.values())
    return {
        "recall": hits / n_p, "recall_ci95": wilson_interval(hits, n_p), "planted": n_p,
        "answer_level_recall": answer_level / n_p,
        "recall_by_kind": {k: {"caught": h, "n": n, "recall": h / n} for k, (h, n) in sorted(by_kind.items())},
        "false_alarm_rate": false_alarms / len(clean), "false_alarm_ci95": wilson_interval(false_alarms, len(clean)),
        "clean": len(clean), "answers_per_s": len(clean) / clean_s,
    }


def audit_sample(auditor: Auditor) -> dict | None:
    if not SAMPLE.exists():
        return None
    from studyabroadgpt.kb.report import audit_file

    res = audit_file(SAMPLE, auditor)
    s = res.summary()
    return {k: s[k] for k in ("answers", "answers_with_error", "error_rate", "error_rate_ci95",
                              "answers_with_scaffolding", "scaffolding_rate", "claims")}


def plot(results: dict, path: Path) -> None:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = ["given_facts", "kb_wide"]
    kinds = sorted(results["given_facts"]["recall_by_kind"])
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.38
    for j, mode in enumerate(modes):
        vals = [results[mode]["recall_by_kind"][k]["recall"] * 100 for k in kinds]
        vals.append((1 - results[mode]["false_alarm_rate"]) * 100)
        ax.bar([i + (j - 0.5) * width for i in range(len(kinds) + 1)], vals, width, label=mode.replace("_", " "))
    ax.set_xticks(range(len(kinds) + 1), [k.replace("_", "\n") for k in kinds] + ["clean answers\nnot flagged"])
    ax.axhline(90, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("Claim audit: recall on planted errors by kind, and specificity on clean answers")
    ax.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conversations", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_audit"))
    ap.add_argument("--dense-subset", type=int, default=60, help="answers audited with the hybrid ranking")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    rng = random.Random(args.seed)
    kb = load_kb()
    clean = clean_items(kb, args.conversations, seed=1000 + args.seed)  # not the seed the dataset ships with
    planted: list[dict] = []
    for item in clean:
        kind = rng.choice(["number", "number", "test_swap", "invented_scholarship", "invented_visa",
                           "misplaced_scheme"])
        if kind == "number":
            got = plant_number(rng, item)
        elif kind == "test_swap":
            got = plant_test_swap(rng, item) or plant_number(rng, item)
        else:
            got = plant_insert(rng, item, kind, kb)
        if got:
            planted.append(got)

    from studyabroadgpt.kb.search import Retriever

    k = args.dense_subset
    retriever = Retriever.from_kb(kb) if k > 0 else None
    results = {
        "kb_version": kb.version, "kb_facts": len(kb.facts), "seed": args.seed,
        "given_facts": run_mode(Auditor(kb), clean, planted, with_facts=True),
        "kb_wide": run_mode(Auditor(kb), clean, planted, with_facts=False),
        # the encoder costs ~0.1-1 s per answer on a busy CPU, so the hybrid ranking runs on a subset
        "kb_wide_dense": run_mode(Auditor(kb, retriever, dense=True), clean[:k], planted[:k], with_facts=False)
        if k > 0 else None,
        "shared_sample": audit_sample(Auditor(kb)),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "results.json", results)
    plot(results, args.out / "results.png")
    for mode in ("given_facts", "kb_wide", "kb_wide_dense"):
        r = results[mode]
        if r is None:
            continue
        lo, hi = r["recall_ci95"]
        f_lo, f_hi = r["false_alarm_ci95"]
        print(f"[{mode}] recall {r['recall']:.3f} (95% CI {lo:.3f}-{hi:.3f}, n={r['planted']}), "
              f"false alarms {r['false_alarm_rate']:.3f} (95% CI {f_lo:.3f}-{f_hi:.3f}, n={r['clean']}), "
              f"{r['answers_per_s']:.0f} answers/s")
        for kind, v in r["recall_by_kind"].items():
            print(f"    {kind:22s} {v['caught']:4d}/{v['n']:<4d} = {v['recall']:.3f}")
    s = results["shared_sample"]
    if s:
        lo, hi = s["error_rate_ci95"]
        print(f"[shared sample] {s['answers_with_error']}/{s['answers']} answers with contradicted or unsupported "
              f"claims = {s['error_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f}); scaffolding in "
              f"{s['answers_with_scaffolding']}/{s['answers']}")
    print(f"results: {args.out / 'results.json'}")
    json.dumps(results)  # fail loudly here rather than in a reader if something is not serialisable


if __name__ == "__main__":
    main()
