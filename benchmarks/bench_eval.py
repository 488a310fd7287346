"""Cost of each evaluation step on this machine: generation (base via disable_adapter vs tuned, by batch size)
and scoring (metrics + 1,000-resample paired bootstrap + claim audit).

    .venv/bin/python benchmarks/bench_eval.py --model default --prompts 8 --max-new-tokens 64 --batch-sizes 1,4

The LoRA is attached fresh with peft (r=16 on all projections, the paper's recipe), so throughput is what a real
adapter costs; its answers equal the base's (B starts at zero), which is fine for timing. Compare numbers only
within one run: CPU timings vary between runs and with other load on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", default="1,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                   "studyabroadgpt-sample", "conversations.jsonl"))
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from studyabroadgpt import models
    from studyabroadgpt.eval.items import load_items
    from studyabroadgpt.eval.score import score_answers
    from studyabroadgpt.eval.systems import HFSystem

    torch.set_num_threads(args.threads)
    items = load_items(args.data)
    items = (items * (args.prompts // len(items) + 1))[:args.prompts]
    for k, it in enumerate(items):
        it.id = f"{it.id}-{k}"
    model, tok = models.load(args.model)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, task_type="CAUSAL_LM", target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    results: dict = {"model": args.model, "prompts": len(items), "max_new_tokens": args.max_new_tokens,
                     "threads": args.threads, "generation": []}
    answers = {}
    for bs in [int(x) for x in args.batch_sizes.split(",")]:
        for name, adapter in (("base", False), ("tuned", True)):
            system = HFSystem(name, model, tok, adapter=adapter, max_new_tokens=args.max_new_tokens, batch_size=bs)
            t0 = time.perf_counter()
            got = system.answer(items)
            wall = time.perf_counter() - t0
            toks = sum(a.new_tokens for a in got)
            row = {"system": name, "batch_size": bs, "wall_s": round(wall, 2), "tokens_per_s": round(toks / wall, 1),
                   "samples_per_s": round(len(got) / wall, 3)}
            results["generation"].append(row)
            print(json.dumps(row), flush=True)
            answers[name] = got
    t0 = time.perf_counter()
    res, _ = score_answers(answers)
    results["score_s"] = round(time.perf_counter() - t0, 2)
    results["score_unavailable"] = res["unavailable"]
    print(json.dumps({"score_s": results["score_s"], "metrics": len(res["metrics"])}), flush=True)
    if args.out:
        from studyabroadgpt.utils import atomic_write_json

        atomic_write_json(args.out, results)


if __name__ == "__main__":
    sys.exit(main())
