"""Profile optimizer steps of our trainer with the torch profiler: where a step's CPU time goes.

    .venv/bin/python benchmarks/profile_train.py                      # SmolLM2-135M, seq 512, batch 1 x 4
    .venv/bin/python benchmarks/profile_train.py --model tiny-random --steps 1   # smoke test

It builds the same ``LoRARecipe`` as ``sagpt train`` (setup, first phase), runs one warm-up step, then profiles
``--steps`` optimizer steps and prints the operators by self CPU time, grouped as docs/training.md reports them
(matmuls, dtype casts, attention, elementwise, optimizer). The table is also written to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "studyabroadgpt-sample" / "conversations.jsonl"

GROUPS = {
    "matmul (mm/addmm/bmm/linear)": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul"),
    "dtype casts (to/copy_)": ("aten::copy_", "aten::to", "aten::_to_copy"),
    "attention (sdpa)": ("aten::_scaled_dot_product", "aten::scaled_dot_product"),
    # train/attention.py's grouped path: its matmuls are bmm (above); these are its mask and softmax passes
    "attention softmax + mask (grouped)": ("aten::_softmax", "aten::_softmax_backward_data", "aten::masked_fill_"),
    "head log_softmax + exp_": ("aten::_log_softmax", "aten::exp_", "aten::logsumexp", "aten::exp"),
    "optimizer (adamw)": ("aten::_foreach", "aten::addcdiv", "aten::lerp", "aten::_fused_adam"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(SAMPLE))
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "runs" / "profile_train.txt"))
    ap.add_argument("--shapes", action="store_true", help="also list the operators by input shape")
    ap.add_argument("--set", nargs="*", default=[], help="extra recipe overrides key=value")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.path.insert(0, str(ROOT / "src"))
    import torch
    from torch.profiler import ProfilerActivity, profile

    from studyabroadgpt.config import apply_overrides, build
    from studyabroadgpt.train.batching import plan_steps
    from studyabroadgpt.train.config import TrainConfig
    from studyabroadgpt.train.trainer import LoRARecipe, kept_heap

    work = ROOT / "runs" / "profile-train"
    data = {"name": "profile", "output_dir": str(work), "model": args.model, "dataset": args.data,
            "seq_len": args.seq_len, "batch_size": 1, "grad_accum": 4, "epochs": 100, "max_steps": args.steps + 1,
            "save_steps": 10_000, "threads": args.threads}
    cfg = build(TrainConfig, apply_overrides(data, args.set))
    recipe = LoRARecipe(cfg, overwrite=True)
    recipe.setup()
    recipe._start_phase(0)
    recipe.prepared.train()
    steps = plan_steps(recipe.examples, **recipe._plan_kwargs())
    with kept_heap(recipe.device == "cpu"):  # as LoRARecipe.train() runs its steps
        recipe._optimizer_step(next(steps))  # warm-up: allocator, oneDNN kernel selection
        tokens, t0 = 0, time.monotonic()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
            for _ in range(args.steps):
                step = next(steps)
                recipe._optimizer_step(step)
                tokens += step.tokens
        wall = time.monotonic() - t0
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    table = events.table(sort_by="self_cpu_time_total", row_limit=25)
    if args.shapes:  # the same operators split by input shape: which tensors the casts and elementwise passes touch
        table += "\n" + prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=30, max_shapes_column_width=70)
    grouped = {g: sum(e.self_cpu_time_total for e in events if e.key.startswith(prefixes))
               for g, prefixes in GROUPS.items()}
    grouped["everything else"] = total - sum(grouped.values())
    load = os.getloadavg()
    lines = [f"model {args.model}, seq {args.seq_len}, batch 1 x 4, {args.steps} profiled steps, {tokens} tokens, "
             f"{tokens / wall:.1f} tokens/s under the profiler, threads {torch.get_num_threads()}, "
             f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
             "", "share of self CPU time:"]
    lines += [f"  {g:32s} {v / total:6.1%}" for g, v in grouped.items()]
    lines += ["", table]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"tokens_per_s": tokens / wall, "groups": {
        g: round(v / total, 4) for g, v in grouped.items()}, "load": load}, indent=2))


if __name__ == "__main__":
    main()
