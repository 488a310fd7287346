"""Our trainer vs TRL ``SFTTrainer`` on the same model, data, LoRA and sequence length, measured in one run.

    .venv/bin/python benchmarks/bench_train.py                   # SmolLM2-135M, seq 512, 6 steps, 3 rounds
    .venv/bin/python benchmarks/bench_train.py --seq-len 512 --steps 4 --model tiny-random --repeats 1  # smoke
    .venv/bin/python benchmarks/bench_train.py --trainers ours,ours-peft,trl   # also: ours with PEFT's LoRA forward

Each run is its own subprocess (so peak RSS is its own); the trainers are interleaved round by round (ours, TRL,
ours, TRL, …) so that a change of machine load hits both alike, and each reports:

* real tokens/s — tokens that are not padding, over the optimizer steps after the first (warm-up) one;
* peak RSS (``ru_maxrss`` of the process, model load included).

TRL is set up in its best CPU configuration from the environment notes (~278 tokens/s there): bf16, assistant-only
loss through a copy of SmolLM2's ChatML template with ``{% generation %}`` markers (SmolLM2's own has none, which
TRL refuses), bfd packing at batch 1 × grad-accum 4, ``use_cpu=True``, SFTConfig's other defaults. Both use the same
LoRA (r16/α32, dropout 0, q,k,v,o,gate,up,down), lr 2e-4, grad clip 0.3, seed 42, 2 threads. Our trainer uses
its default recipe (bf16 frozen base + fp32 LoRA + bf16 autocast, first-fit packing at batch 1 × accum 4, the
vocabulary head on trained positions only, chunked fused cross-entropy). Steps vary ±15 % on a shared CPU: compare the ratio, measured in the same run, not absolute figures.

The summary gives, per trainer, the median tokens/s and peak RSS over ``--repeats`` rounds with min–max, the
ratio of medians, the median of the per-round ratios, the 1-minute load average before every run, and our share
of the CPU's bf16 matmul peak (``--peak-gflops``, ~950 on the 2-core EPYC of the environment notes) at
4 × parameters FLOPs per token (forward + input-gradient backward; the frozen base needs no weight gradient).

Writes a JSON result and a bar chart next to it (default ``runs/bench_train.{json,png}``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "studyabroadgpt-sample" / "conversations.jsonl"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# SmolLM2's ChatML template with generation markers around what our trainer trains (content + <|im_end|>).
CHATML_WITH_GENERATION = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}"
    "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_ours(args: argparse.Namespace) -> dict:
    from studyabroadgpt.train import modeling, run
    from studyabroadgpt.train.config import TrainConfig

    modeling.FUSED_LORA = args.child == "ours"  # "ours-peft": PEFT's own LoRA forward, to measure the fusion

    out = Path(args.workdir)
    cfg = TrainConfig(name="bench-ours", output_dir=str(out), model=args.model, dataset=args.data,
                      seq_len=args.seq_len, batch_size=1, grad_accum=4, epochs=100, max_steps=args.steps,
                      lr=2e-4, max_grad_norm=0.3, save_steps=10_000, threads=2, seed=42)
    run_dir = run(cfg, overwrite=True)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = rows[1:]  # the first step pays one-off costs (allocator warm-up, oneDNN kernel selection)
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in timed)
    info = json.loads((run_dir / "run_info.json").read_text())
    return {"trainer": args.child, "params": info["total_params"], "steps": len(timed), "tokens": sum(r["tokens"] for r in timed),
            "seconds": seconds, "tokens_per_s": sum(r["tokens"] for r in timed) / seconds,
            "first_loss": rows[0]["loss"], "last_loss": rows[-1]["loss"], "peak_rss_mb": peak_rss_mb()}


def child_trl(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from studyabroadgpt import models
    from studyabroadgpt.data.load import load_valid

    torch.set_num_threads(2)
    model, tok = models.load(args.model, dtype="float32")
    tok.chat_template = CHATML_WITH_GENERATION
    convs = load_valid(args.data).conversations
    data = Dataset.from_list([{"messages": c.messages()} for c in convs])
    config = SFTConfig(
        output_dir=str(Path(args.workdir) / "bench-trl"), use_cpu=True, bf16=True, packing=True,
        packing_strategy="bfd", per_device_train_batch_size=1, gradient_accumulation_steps=4,
        max_length=args.seq_len, assistant_only_loss=True, learning_rate=2e-4, max_grad_norm=0.3,
        max_steps=args.steps, num_train_epochs=100, logging_steps=1, save_strategy="no", report_to=[],
        seed=42, dataloader_num_workers=0, dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tok,
                         peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS,
                                                task_type="CAUSAL_LM"))
    counted = {"tokens": 0}
    collator = trainer.data_collator

    def counting_collator(features):
        batch = collator(features)
        # padding-free / packed batches carry no padding; otherwise count the attention mask, never pad ids
        # (SmolLM2's pad id is its EOS id)
        mask = batch.get("attention_mask")
        counted["tokens"] += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting_collator
    steps: list[tuple[float, int]] = []
    losses: list[float] = []

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            steps.append((time.monotonic(), counted["tokens"]))

        def on_step_end(self, *a, **k):
            steps.append((time.monotonic(), counted["tokens"]))

        def on_log(self, args_, state, control, logs=None, **k):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    trainer.add_callback(Timer())
    trainer.train()
    # step s's micro-batches are collated between the end of step s-1 and the end of step s
    (t1, n1), (t_end, n_end) = steps[1], steps[-1]
    return {"trainer": "trl", "steps": len(steps) - 2, "tokens": n_end - n1, "seconds": t_end - t1,
            "tokens_per_s": (n_end - n1) / (t_end - t1), "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "peak_rss_mb": peak_rss_mb(),
            "gradient_checkpointing": config.gradient_checkpointing}


def run_child(kind: str, args: argparse.Namespace) -> dict:
    result_file = Path(args.workdir) / f"{kind}.json"
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", kind, "--result", str(result_file), "--model", args.model,
           "--data", args.data, "--seq-len", str(args.seq_len), "--steps", str(args.steps), "--workdir",
           args.workdir]
    # Passive OpenMP waiting for both: on a shared 2-core box, spinning worker threads collapse throughput
    # 5-10x whenever other processes compete for the cores (measured; see docs/training.md).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    res = json.loads(result_file.read_text())
    res["process_wall_s"] = round(time.monotonic() - t0, 1)
    res["load_before"], res["load_after"] = round(load_before, 2), round(os.getloadavg()[0], 2)
    return res


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def summarize(runs: list[dict], kinds: list[str], peak_gflops: float) -> dict:
    out: dict = {}
    for k in kinds:
        rs = [r for r in runs if r["trainer"] == k]
        tps = [r["tokens_per_s"] for r in rs]
        rss = [r["peak_rss_mb"] for r in rs]
        out[k] = {"runs": len(rs), "tokens_per_s_median": round(_median(tps), 1),
                  "tokens_per_s_min": round(min(tps), 1), "tokens_per_s_max": round(max(tps), 1),
                  "peak_rss_mb_median": round(_median(rss)), "peak_rss_mb_max": round(max(rss))}
        if "params" in rs[0]:
            gflop_per_token = 4 * rs[0]["params"] / 1e9
            out[k]["gflop_per_token"] = round(gflop_per_token, 3)
            out[k]["share_of_bf16_matmul_peak"] = round(_median(tps) * gflop_per_token / peak_gflops, 4)
    return out


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from studyabroadgpt.utils import save_figure

    s = results["summary"]
    names = list(s)
    colors = ["tab:blue", "tab:cyan", "tab:gray"][: len(names)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    med = [s[n]["tokens_per_s_median"] for n in names]
    err = [[m - s[n]["tokens_per_s_min"] for n, m in zip(names, med)],
           [s[n]["tokens_per_s_max"] - m for n, m in zip(names, med)]]
    a.bar(names, med, yerr=err, capsize=4, color=colors)
    a.set_title("real tokens/s, median and min–max")
    b.bar(names, [s[n]["peak_rss_mb_median"] / 1024 for n in names], color=colors)
    b.set_title("peak RSS, GB (median)")
    fig.suptitle(f"{results['model']}, seq {results['seq_len']}, LoRA r16, {results['steps']} steps × "
                 f"{results['repeats']} rounds: {results['speedup']:.2f}x tokens/s, {results['memory_ratio']:.2f}x "
                 f"memory (load {results['load_min']:.1f}–{results['load_max']:.1f})", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(SAMPLE))
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per run (the first is not timed)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each round runs every trainer once")
    ap.add_argument("--trainers", default="ours,trl", help="comma-separated: ours, ours-peft, trl")
    ap.add_argument("--peak-gflops", type=float, default=950.0, help="the CPU's bf16 matmul peak")
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "bench-train"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_train.json"))
    ap.add_argument("--child", choices=["ours", "ours-peft", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        sys.path.insert(0, str(ROOT / "src"))
        res = (child_trl if args.child == "trl" else child_ours)(args)
        Path(args.result).write_text(json.dumps(res))
        return
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    kinds = args.trainers.split(",")
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    runs = []
    for i in range(args.repeats):
        for kind in (kinds if i % 2 == 0 else kinds[::-1]):  # alternate the order too
            r = run_child(kind, args)
            r["round"] = i
            runs.append(r)
            Path(args.out).with_suffix(".partial.json").write_text(json.dumps(runs, indent=2))  # survives a crash
            print(f"round {i + 1}/{args.repeats} {kind:9} {r['tokens_per_s']:7.1f} tokens/s "
                  f"{r['peak_rss_mb'] / 1024:5.2f} GB (load {r['load_before']:.2f})", flush=True)
    summary = summarize(runs, kinds, args.peak_gflops)
    loads = [r["load_before"] for r in runs] + [r["load_after"] for r in runs]
    ours, trl = summary.get("ours"), summary.get("trl")
    paired = [a["tokens_per_s"] / b["tokens_per_s"] for i in range(args.repeats)
              for a in runs if a["trainer"] == "ours" and a["round"] == i
              for b in runs if b["trainer"] == "trl" and b["round"] == i]
    results = {"model": args.model, "seq_len": args.seq_len, "steps": args.steps, "repeats": args.repeats,
               "data": args.data, "uptime_start": uptime_start,
               "uptime_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
               "load_min": min(loads), "load_max": max(loads), "summary": summary, "runs": runs,
               "speedup": ours["tokens_per_s_median"] / trl["tokens_per_s_median"] if ours and trl else float("nan"),
               "speedup_per_round": [round(x, 3) for x in paired],
               "memory_ratio": ours["peak_rss_mb_median"] / trl["peak_rss_mb_median"] if ours and trl else
               float("nan")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    print(f"\n{'trainer':9} {'tokens/s median (min–max)':>27} {'peak RSS':>9} {'share of bf16 peak':>18}")
    for k, v in summary.items():
        share = f"{v['share_of_bf16_matmul_peak']:.1%}" if "share_of_bf16_matmul_peak" in v else "-"
        print(f"{k:9} {v['tokens_per_s_median']:10.1f} ({v['tokens_per_s_min']:.1f}–{v['tokens_per_s_max']:.1f})"
              f"{'':4} {v['peak_rss_mb_median'] / 1024:8.2f}G {share:>18}")
    print(f"ours / TRL: {results['speedup']:.2f}x tokens/s (per round: {results['speedup_per_round']}) at "
          f"{results['memory_ratio']:.2f}x peak memory; load {results['load_min']:.2f}–{results['load_max']:.2f}"
          f"\n{uptime_start}\n→ {out}")


if __name__ == "__main__":
    main()
