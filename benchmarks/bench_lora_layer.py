"""One LoRA projection, forward + backward under bf16 autocast: PEFT's forward vs our fused one, interleaved.

    .venv/bin/python benchmarks/bench_lora_layer.py            # SmolLM2-135M shapes: 2048 tokens, 576 -> 576 / 1536

A quick, load-robust check of the fused LoRA forward (train/modeling.py): both variants run in one process on the
same tensors, alternating, and the median time per call of each is compared (a shared machine slows both alike).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_lora_layer.json"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.path.insert(0, str(ROOT / "src"))
    import torch
    from peft import LoraConfig, get_peft_model
    from torch import nn

    from studyabroadgpt.train.modeling import _fused_lora_forward

    torch.set_num_threads(args.threads)
    results = {}
    for name, (fan_in, fan_out) in {"q_proj 576->576": (576, 576), "up_proj 576->1536": (576, 1536),
                                    "down_proj 1536->576": (1536, 576)}.items():
        torch.manual_seed(0)
        base = nn.Sequential(nn.Linear(fan_in, fan_out, bias=False)).to(torch.bfloat16)
        model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=["0"]))
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        layer = model.base_model.model[0]
        peft_forward = layer.forward
        fused_forward = types.MethodType(_fused_lora_forward, layer)
        x = torch.randn(args.tokens, fan_in, dtype=torch.bfloat16, requires_grad=True)
        times = {"peft": [], "fused": []}
        for i in range(args.repeats + 1):
            for variant in (("peft", "fused") if i % 2 == 0 else ("fused", "peft")):
                layer.forward = peft_forward if variant == "peft" else fused_forward
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = layer(x)
                y.float().square().mean().backward()
                dt = time.perf_counter() - t0
                if i:  # the first round warms up oneDNN
                    times[variant].append(dt)
                model.zero_grad(set_to_none=True)
                x.grad = None
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        results[name] = {"peft_ms": round(med["peft"], 2), "fused_ms": round(med["fused"], 2),
                         "speedup": round(med["peft"] / med["fused"], 3)}
        print(f"{name:22} PEFT {med['peft']:8.2f} ms   fused {med['fused']:8.2f} ms   {med['peft'] / med['fused']:.2f}x")
    load = os.getloadavg()
    results["load_average"] = load
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
