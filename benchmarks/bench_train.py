"""Our trainer vs TRL ``SFTTrainer`` on the same model, data, LoRA and sequence length, measured in one run.

    .venv/bin/python benchmarks/bench_train.py                   # SmolLM2-135M, seq 512, 6 steps, 3 rounds
    .venv/bin/python benchmarks/bench_train.py --seq-len 512 --steps 4 --model tiny-random --repeats 1  # smoke

Each run is its own subprocess (so peak RSS is its own); the trainers are interleaved round by round (ours, TRL,
TRL, ours, …) so that a change of machine load hits both alike, and each reports:

* real tokens/s — tokens that are not padding, over the optimizer steps after the first (warm-up) one;
* peak RSS (``ru_maxrss`` of the process, model load included).

Both train in the precision our ``precision: auto`` picks on this CPU: fp32 where the CPU has no AVX512-BF16/AMX
(bf16 matmuls are emulated there, many times slower), bf16 where it has them. TRL is set up in its best CPU
configuration from the environment notes: assistant-only loss through a copy of SmolLM2's ChatML template with
``{% generation %}`` markers (SmolLM2's own has none, which TRL refuses), bfd packing at batch 1 × grad-accum 4,
``use_cpu=True``, no gradient checkpointing (``--trl-checkpointing`` for SFTConfig's default), SFTConfig's other
defaults; ``trl`` keeps the base in fp32 under bf16 autocast, ``trl-bf16w`` loads it in bf16, and the ratio is
taken against the faster of those in the run. Both use the same LoRA (r16/α32, dropout 0, q,k,v,o,gate,up,down), lr 2e-4, grad clip 0.3, seed 42,
2 threads. Our trainer uses its default recipe (first-fit packing at batch 1 × accum 4, the vocabulary head on
trained positions only, chunked fused cross-entropy). TRL's step timing is shared with gpu_check.py
(``trl_timing.py``).

The summary gives, per trainer, the median tokens/s and peak RSS over ``--repeats`` rounds with min–max, the
ratio of medians, the median of the per-round ratios, the 1-minute load average before every run, ``uptime`` at
start and end, and each trainer's share of this CPU's matmul peak in the compute dtype — measured in the same run (best of six
2048³ products on 2 threads, at the start and at the end) — at 4 × parameters FLOPs per token (forward +
input-gradient backward; the frozen base needs no weight gradient).

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
KINDS = ["ours", "ours-base", "trl", "trl-bf16w"]
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
    from studyabroadgpt.train import run  # from --src: this tree's, or --baseline-src's for "ours-base"
    from studyabroadgpt.train.config import TrainConfig

    out = Path(args.workdir)
    cfg = TrainConfig(name="bench-ours", output_dir=str(out), model=args.model, dataset=args.data,
                      seq_len=args.seq_len, batch_size=1, grad_accum=4, epochs=100, max_steps=args.steps,
                      lr=2e-4, max_grad_norm=0.3, save_steps=10_000, threads=2, seed=42, precision=args.precision)
    run_dir = run(cfg, overwrite=True)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = rows[1:]  # the first step pays one-off costs (allocator warm-up, oneDNN kernel selection)
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in timed)
    info = json.loads((run_dir / "run_info.json").read_text())
    return {"trainer": args.child, "src": str(Path(run.__code__.co_filename).parents[2]), "params": info["total_params"], "steps": len(timed), "tokens": sum(r["tokens"] for r in timed),
            "seconds": seconds, "tokens_per_s": sum(r["tokens"] for r in timed) / seconds,
            "first_loss": rows[0]["loss"], "last_loss": rows[-1]["loss"], "peak_rss_mb": peak_rss_mb()}


def child_trl(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from studyabroadgpt import models
    from studyabroadgpt.data.load import load_valid
    from studyabroadgpt.train.modeling import cpu_has_fast_bf16

    torch.set_num_threads(2)
    # the same precision our trainer's ``auto`` picks: bf16 only where the CPU has it in hardware. "trl" keeps
    # the base in fp32 under bf16 autocast (SFTConfig(bf16=True) on a default load); "trl-bf16w" loads the base
    # in bf16 as ours does (PEFT still keeps the LoRA weights in fp32): whichever is faster is TRL's best.
    bf16 = cpu_has_fast_bf16() if args.precision == "auto" else args.precision == "bf16"
    model, tok = models.load(args.model, dtype="bfloat16" if bf16 and args.child == "trl-bf16w" else "float32")
    tok.chat_template = CHATML_WITH_GENERATION
    convs = load_valid(args.data).conversations
    data = Dataset.from_list([{"messages": c.messages()} for c in convs])
    config = SFTConfig(
        output_dir=str(Path(args.workdir) / "bench-trl"), use_cpu=True, bf16=bf16, packing=True,
        packing_strategy="bfd", per_device_train_batch_size=1, gradient_accumulation_steps=4,
        max_length=args.seq_len, assistant_only_loss=True, learning_rate=2e-4, max_grad_norm=0.3,
        max_steps=args.steps, num_train_epochs=100, logging_steps=1, save_strategy="no", report_to=[],
        seed=42, dataloader_num_workers=0, dataset_num_proc=None,
        # SFTConfig turns checkpointing on by default; at 135M on 2 cores recomputation costs more time than
        # the memory it saves buys, and ours runs without it: the same setting for both
        gradient_checkpointing=args.trl_checkpointing)
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tok,
                         peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS,
                                                task_type="CAUSAL_LM"))
    from trl_timing import TRLTiming

    timing = TRLTiming(trainer)
    trainer.train()
    return {**timing.result(), "trainer": args.child, "weights": str(model.dtype), "peak_rss_mb": peak_rss_mb(), "bf16": config.bf16,
            "gradient_checkpointing": config.gradient_checkpointing}


def run_child(kind: str, args: argparse.Namespace) -> dict:
    result_file = Path(args.workdir) / f"{kind}.json"
    result_file.unlink(missing_ok=True)
    src = args.baseline_src if kind == "ours-base" else str(ROOT / "src")
    cmd = [sys.executable, __file__, "--child", kind, "--src", src, "--result", str(result_file), "--model", args.model,
           "--data", args.data, "--seq-len", str(args.seq_len), "--steps", str(args.steps), "--workdir",
           args.workdir, "--precision", args.precision] + (["--trl-checkpointing"] if args.trl_checkpointing else [])
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


def matmul_peak_gflops(threads: int = 2, n: int = 2048, reps: int = 6, dtype: str = "float32") -> float:
    """This CPU's practical matmul peak in ``dtype``: the best of ``reps`` n×n×n products on ``threads`` threads
    (run in a child so its thread setting and memory stay out of the trainers' processes)."""
    code = (f"import time, torch; torch.set_num_threads({threads}); a = torch.randn({n}, {n}).to(torch.{dtype}); "
            f"b = torch.randn({n}, {n}).to(torch.{dtype}); a @ b; best = 1e9\nfor _ in range({reps}):\n"
            f"    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)\n"
            f"print(2 * {n} ** 3 / best / 1e9)")
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    return float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout.strip())


def summarize(runs: list[dict], kinds: list[str], peak_gflops: float) -> dict:
    out: dict = {}
    for k in kinds:
        rs = [r for r in runs if r["trainer"] == k]
        tps = [r["tokens_per_s"] for r in rs]
        rss = [r["peak_rss_mb"] for r in rs]
        out[k] = {"runs": len(rs), "tokens_per_s_median": round(_median(tps), 1),
                  "tokens_per_s_min": round(min(tps), 1), "tokens_per_s_max": round(max(tps), 1),
                  "peak_rss_mb_median": round(_median(rss)), "peak_rss_mb_max": round(max(rss))}
        params = next((r["params"] for r in runs if "params" in r), None)  # the same model for every trainer
        if params:
            gflop_per_token = 4 * params / 1e9
            out[k]["gflop_per_token"] = round(gflop_per_token, 3)
            out[k]["share_of_matmul_peak"] = round(_median(tps) * gflop_per_token / peak_gflops, 4)
    return out


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from studyabroadgpt.utils import save_figure

    s = results["summary"]
    names = list(s)
    colors = ["tab:blue", "tab:cyan", "tab:gray", "tab:olive"][: len(names)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    med = [s[n]["tokens_per_s_median"] for n in names]
    err = [[m - s[n]["tokens_per_s_min"] for n, m in zip(names, med)],
           [s[n]["tokens_per_s_max"] - m for n, m in zip(names, med)]]
    a.bar(names, med, yerr=err, capsize=4, color=colors)
    a.set_title("real tokens/s, median and min–max")
    b.bar(names, [s[n]["peak_rss_mb_median"] / 1024 for n in names], color=colors)
    b.set_title("peak RSS, GB (median)")
    fig.suptitle(f"{results['model']}, seq {results['seq_len']}, LoRA r16, {results['steps']} steps × "
                 f"{results['repeats']} rounds: {results['speedup']:.2f}x {results['trl_best']}'s tokens/s, "
                 f"{results['memory_ratio']:.2f}x memory (load {results['load_min']:.1f}–{results['load_max']:.1f})", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(SAMPLE))
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per run (the first is not timed)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each round runs every trainer once")
    ap.add_argument("--trainers", default="ours,trl",
                    help="comma-separated: ours, ours-base (our trainer from --baseline-src), trl (fp32 base under "
                         "bf16 autocast where bf16 is in hardware), trl-bf16w (bf16 base)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="both trainers: our recipe's precision, TRL's bf16 flag (auto: bf16 where in hardware)")
    ap.add_argument("--baseline-src", help="another checkout's src/ for ours-base, e.g. main before a change")
    ap.add_argument("--trl-checkpointing", action="store_true",
                    help="TRL with SFTConfig's default gradient checkpointing (off by default: slower at 135M)")
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "bench-train"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_train.json"))
    ap.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    ap.add_argument("--src", default=str(ROOT / "src"), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        sys.path.insert(0, args.src)
        res = (child_trl if args.child.startswith("trl") else child_ours)(args)
        Path(args.result).write_text(json.dumps(res))
        return
    sys.path.insert(0, str(ROOT / "src"))
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    kinds = args.trainers.split(",")
    if unknown := [k for k in kinds if k not in KINDS]:
        sys.exit(f"--trainers: unknown {unknown}; choose from {KINDS}")
    if "ours-base" in kinds and not args.baseline_src:
        sys.exit("--trainers ours-base needs --baseline-src (a src/ directory)")
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    from studyabroadgpt.train.modeling import cpu_has_fast_bf16

    # the share of peak is taken against the dtype the matmuls run in (bf16 autocast where it is in hardware)
    bf16 = cpu_has_fast_bf16() if args.precision == "auto" else args.precision == "bf16"
    dtype = "bfloat16" if bf16 else "float32"
    peaks = [matmul_peak_gflops(dtype=dtype)]
    print(f"{dtype} matmul peak (2048³, 2 threads): {peaks[0]:.1f} GFLOP/s", flush=True)
    runs = []
    for i in range(args.repeats):
        for kind in (kinds if i % 2 == 0 else kinds[::-1]):  # alternate the order too
            r = run_child(kind, args)
            r["round"] = i
            runs.append(r)
            Path(args.out).with_suffix(".partial.json").write_text(json.dumps(runs, indent=2))  # survives a crash
            print(f"round {i + 1}/{args.repeats} {kind:9} {r['tokens_per_s']:7.1f} tokens/s "
                  f"{r['peak_rss_mb'] / 1024:5.2f} GB (load {r['load_before']:.2f})", flush=True)
    peaks.append(matmul_peak_gflops(dtype=dtype))  # again at the end: the better of the two is the machine's peak
    summary = summarize(runs, kinds, max(peaks))
    loads = [r["load_before"] for r in runs] + [r["load_after"] for r in runs]
    # TRL's best configuration is whichever TRL set-up ran fastest (median) in this same run
    trl_kinds = [k for k in kinds if k.startswith("trl")]
    trl_best = max(trl_kinds, key=lambda k: summary[k]["tokens_per_s_median"]) if trl_kinds else None
    ours, trl = summary.get("ours"), summary.get(trl_best)

    def per_round(a_kind: str, b_kind: str) -> list[float]:
        return [round(a["tokens_per_s"] / b["tokens_per_s"], 3) for i in range(args.repeats)
                for a in runs if a["trainer"] == a_kind and a["round"] == i
                for b in runs if b["trainer"] == b_kind and b["round"] == i]

    base = summary.get("ours-base")
    results = {"model": args.model, "seq_len": args.seq_len, "steps": args.steps, "repeats": args.repeats,
               "data": args.data, "uptime_start": uptime_start,
               "uptime_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
               "load_min": min(loads), "load_max": max(loads), "precision": args.precision, "matmul_dtype": dtype,
               "matmul_peak_gflops": [round(p, 1) for p in peaks], "summary": summary, "runs": runs,
               "trl_best": trl_best,
               "speedup": ours["tokens_per_s_median"] / trl["tokens_per_s_median"] if ours and trl else float("nan"),
               "speedup_per_round": per_round("ours", trl_best) if trl_best else [],
               "memory_ratio": ours["peak_rss_mb_median"] / trl["peak_rss_mb_median"] if ours and trl else
               float("nan"),
               "over_baseline_src": ours["tokens_per_s_median"] / base["tokens_per_s_median"] if ours and base
               else None, "baseline_src": args.baseline_src}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    print(f"\n{'trainer':9} {'tokens/s median (min–max)':>27} {'peak RSS':>9} {'share of matmul peak':>20}")
    for k, v in summary.items():
        share = f"{v['share_of_matmul_peak']:.1%}" if "share_of_matmul_peak" in v else "-"
        print(f"{k:9} {v['tokens_per_s_median']:10.1f} ({v['tokens_per_s_min']:.1f}–{v['tokens_per_s_max']:.1f})"
              f"{'':4} {v['peak_rss_mb_median'] / 1024:8.2f}G {share:>20}")
    if results["over_baseline_src"]:
        print(f"ours / ours-base ({args.baseline_src}): {results['over_baseline_src']:.2f}x tokens/s (per round: "
              f"{per_round('ours', 'ours-base')})")
    print(f"ours / TRL's best ({trl_best}): {results['speedup']:.2f}x tokens/s (per round: "
          f"{results['speedup_per_round']}) at {results['memory_ratio']:.2f}x peak memory; load "
          f"{results['load_min']:.2f}–{results['load_max']:.2f}; {dtype} matmul peak {max(peaks):.1f} GFLOP/s\n"
          f"{uptime_start}\n{results['uptime_end']}\n→ {out}")


if __name__ == "__main__":
    main()
