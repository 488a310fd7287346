"""Gate correction precision and recall on the labelled gate set, this tree against the old code.

    python benchmarks/bench_gate.py --out runs/bench_gate           # + --before-src /work/before/src

A "correction" is an edit that changes what the answer asserts (a figure replaced, a rule sentence replaced,
a sentence removed); marking "(unverified)" is not one. Precision: corrections the case asked for / all
corrections made. Recall: asked-for corrections made / all asked for. The old code is run in a separate
process on the cases whose facts its knowledge base has. Writes summary.json and summary.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BEFORE = r'''
import json, sys
from studyabroadgpt.kb.audit import Auditor
from studyabroadgpt.kb.store import load_kb
from studyabroadgpt.serve.gate import run_gate
from studyabroadgpt.serve.grounding import Source
cases = json.load(open(sys.argv[1])); kb = load_kb(); auditor = Auditor(kb); out = {}
for c in cases:
    if not all(f in kb.by_id for f in c["facts"]):
        continue
    sources = [Source(i + 1, kb.by_id[f]) for i, f in enumerate(c["facts"])]
    try:  # older trees take no context
        r = run_gate(auditor, c["answer"], c["question"], sources, kb=kb, context=c.get("context", ""))
    except TypeError:
        r = run_gate(auditor, c["answer"], c["question"], sources, kb=kb)
    # changes were dicts in older trees, GateChange (to_dict) since; the corrections are what precision counts
    rows = [ch.to_dict() if hasattr(ch, "to_dict") else ch for ch in r.changes]
    out[c["id"]] = [ch for ch in rows if ch["action"] in ("corrected", "corrected_rule", "removed")]
json.dump(out, open(sys.argv[2], "w"))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before-src", default=None)
    ap.add_argument("--out", default="runs/bench_gate")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "serve"))
    from test_gate_cases import load_cases, match_edits, run_case, summarize

    from studyabroadgpt.kb.audit import Auditor
    from studyabroadgpt.kb.store import load_kb

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases = load_cases()
    kb = load_kb()
    auditor = Auditor(kb)
    rows = {c["id"]: run_case(c, auditor, kb) for c in cases}
    report = {"after": summarize(list(rows.values()))}
    if args.before_src:
        (out / "cases.json").write_text(json.dumps(cases))
        env = {**os.environ, "PYTHONPATH": args.before_src}
        subprocess.run([sys.executable, "-c", BEFORE, str(out / "cases.json"), str(out / "before.json")],
                       env=env, check=True)
        before = json.loads((out / "before.json").read_text())
        common = [c for c in cases if c["id"] in before]
        report["before"] = summarize([match_edits(c, before[c["id"]]) for c in common])
        report["after_same_cases"] = summarize([rows[c["id"]] for c in common])
    lines = ["| system | cases | corrections made | right | precision | recall |", "|---|---|---|---|---|---|"]
    for name, r in report.items():
        lines.append(f"| {name} | {r['cases']} | {r['edits']} | {r['right_edits']} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} ({r['found']}/{r['expected']}) |")
    lines += ["", "Wrong corrections:"]
    for name, r in report.items():
        for row in r["rows"]:
            for w in row["wrong"]:
                lines.append(f"- {name} {row['id']}: {w}")
    (out / "summary.json").write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "rows"}
                                                  for k, v in report.items()}, indent=2))
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
