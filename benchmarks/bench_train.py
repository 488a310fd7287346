"""Our trainer vs TRL ``SFTTrainer`` on the same model, data, LoRA and sequence length, measured in one run.

    .venv/bin/python benchmarks/bench_train.py                   # SmolLM2-135M, seq 512, 6 steps each
    .venv/bin/python benchmarks/bench_train.py --seq-len 512 --steps 4 --model tiny-random   # smoke test

Each trainer runs in its own subprocess (so peak RSS is its own) and reports:

* real tokens/s — tokens that are not padding, over the optimizer steps after the first (warm-up) one;
* peak RSS (``ru_maxrss`` of the process, model load included).

TRL is set up in its best CPU configuration from the environment notes (~278 tokens/s there): bf16, assistant-only
loss through a copy of SmolLM2's ChatML template with ``{% generation %}`` markers (SmolLM2's own has none, which
TRL refuses), bfd packing at batch 1 × grad-accum 4, ``use_cpu=True``, SFTConfig's other defaults. Both use the same
LoRA (r16/α32, dropout 0, q,k,v,o,gate,up,down), lr 2e-4, grad clip 0.3, seed 42, 2 threads. Our trainer uses
its default recipe (bf16 frozen base + fp32 LoRA + bf16 autocast, first-fit packing at batch 1 × accum 4, the
vocabulary head on trained positions only, chunked fused cross-entropy). Steps vary ±15 % on a shared CPU: compare the ratio, measured in the same run, not absolute figures.

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
    from studyabroadgpt.train import run
    from studyabroadgpt.train.config import TrainConfig

    out = Path(args.workdir)
    cfg = TrainConfig(name="bench-ours", output_dir=str(out), model=args.model, dataset=args.data,
                      seq_len=args.seq_len, batch_size=1, grad_accum=4, epochs=100, max_steps=args.steps,
                      lr=2e-4, max_grad_norm=0.3, save_steps=10_000, threads=2, seed=42)
    run_dir = run(cfg, overwrite=True)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = rows[1:]  # the first step pays one-off costs (allocator warm-up, oneDNN kernel selection)
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in timed)
    return {"trainer": "ours", "steps": len(timed), "tokens": sum(r["tokens"] for r in timed),
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
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    res = json.loads(result_file.read_text())
    res["process_wall_s"] = round(time.monotonic() - t0, 1)
    return res


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from studyabroadgpt.utils import save_figure

    names = [r["trainer"] for r in results["runs"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    a.bar(names, [r["tokens_per_s"] for r in results["runs"]], color=["tab:blue", "tab:gray"])
    a.set_title("real tokens/s (higher is better)")
    b.bar(names, [r["peak_rss_mb"] / 1024 for r in results["runs"]], color=["tab:blue", "tab:gray"])
    b.set_title("peak RSS, GB (lower is better)")
    fig.suptitle(f"{results['model']}, seq {results['seq_len']}, LoRA r16, {results['steps']} steps: "
                 f"{results['speedup']:.2f}x tokens/s, {results['memory_ratio']:.2f}x memory")
    fig.tight_layout()
    save_figure(fig, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(SAMPLE))
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per trainer (the first is not timed)")
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "bench-train"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_train.json"))
    ap.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        sys.path.insert(0, str(ROOT / "src"))
        res = (child_ours if args.child == "ours" else child_trl)(args)
        Path(args.result).write_text(json.dumps(res))
        return
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    ours, trl = run_child("ours", args), run_child("trl", args)
    results = {"model": args.model, "seq_len": args.seq_len, "steps": args.steps, "data": args.data,
               "runs": [ours, trl], "speedup": ours["tokens_per_s"] / trl["tokens_per_s"],
               "memory_ratio": ours["peak_rss_mb"] / trl["peak_rss_mb"]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    print(f"{'trainer':8} {'tokens/s':>9} {'peak RSS':>9} {'steps':>5} {'loss first→last':>18}")
    for r in results["runs"]:
        print(f"{r['trainer']:8} {r['tokens_per_s']:9.1f} {r['peak_rss_mb'] / 1024:8.2f}G {r['steps']:5d} "
              f"{r['first_loss']:8.4f}→{r['last_loss']:.4f}")
    print(f"ours / TRL: {results['speedup']:.2f}x tokens/s at {results['memory_ratio']:.2f}x peak memory "
          f"→ {out}")


if __name__ == "__main__":
    main()
