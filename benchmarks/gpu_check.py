"""GPU check of the paper's QLoRA recipe: peak memory and speed of our trainer and TRL's SFTTrainer, next to
``sagpt train --plan``'s estimate — with no download at all.

    python benchmarks/gpu_check.py                                  # Mistral-7B-v0.3 shape, seq 2048, batch 4
    python benchmarks/gpu_check.py --arch tiny --seq-len 64 --batch 2 --steps 2   # CPU smoke test (the test)

1. Builds a randomly initialised model with Mistral-7B-v0.3's exact architecture (config.json fields below;
   weight values change neither memory nor speed) and a word-level tokenizer of the same vocabulary size, and
   saves both (safetensors, bf16) under ``--workdir`` (reused on later runs).
2. Writes conversations whose assistant turns are long enough that every one is truncated to ``--seq-len``, so
   both trainers see rows of exactly ``seq_len`` tokens, ``--batch`` rows per optimizer step (the T4 recipe:
   seq 2048, batch 4).
3. Runs each trainer in its own process (so each peak is its own): the 4-bit NF4 model (double quant), LoRA r16
   α32 on q,k,v,o,gate,up,down, gradient checkpointing, 8-bit AdamW on CUDA (torch AdamW on CPU), fp16 compute
   below compute capability 8.0, bf16 from 8.0 and on CPU — ours through ``LoRARecipe``, TRL through
   ``SFTTrainer`` with assistant-only loss.
4. Reports tokens/s (steps after the first) and peak GPU memory (``torch.cuda.max_memory_allocated``; peak RSS on
   CPU) for both, the planner's estimate for the same shape, and writes JSON (``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# mistralai/Mistral-7B-v0.3 config.json (the Instruct model shares it).
MISTRAL_7B_V03 = {
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 32768, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "sliding_window": None, "hidden_act": "silu",
    "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
}
# Same family, a few MB: for the CPU test of this script.
TINY = {**MISTRAL_7B_V03, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 2048,
        "max_position_embeddings": 4096}
ARCHS = {"mistral-7b-v0.3": MISTRAL_7B_V03, "tiny": TINY}

# ChatML with generation markers: TRL's assistant_only_loss needs them; our trainer finds turns itself.
CHATML_WITH_GENERATION = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]


def device_info() -> dict:
    import torch

    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return {"device": "cuda", "name": p.name, "memory_gb": round(p.total_memory / 2**30, 2),
                "capability": f"{p.major}.{p.minor}", "bf16": p.major >= 8}
    return {"device": "cpu", "name": "cpu", "threads": torch.get_num_threads(), "bf16": True}


def build_model(arch: str, out: Path) -> Path:
    """A randomly initialised model with the architecture's exact config, plus a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        return out
    fields = ARCHS[arch]
    config = MistralConfig(**fields, dtype="bfloat16")
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for i in range(len(SPECIALS), fields["vocab_size"]):
        vocab[f"w{i}"] = i
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", additional_special_tokens=SPECIALS[4:])
    tokenizer.chat_template = CHATML_WITH_GENERATION
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[4:]})
    # Build directly in bf16 (a 7B model is 14.5 GB in bf16, 29 GB in fp32), on the GPU when it has room.
    big = torch.cuda.is_available() and torch.cuda.get_device_properties(0).total_memory > 40 * 2**30
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda" if big else "cpu"):
            model = MistralForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    del model
    os.replace(tmp, out)
    return out


def write_data(path: Path, vocab_size: int, seq_len: int, n: int) -> Path:
    """Conversations of random in-vocabulary words, each longer than seq_len tokens (so truncated to it)."""
    from studyabroadgpt.data.io import write_conversations
    from studyabroadgpt.data.schema import Conversation, Turn

    rng = random.Random(0)
    words = [f"w{i}" for i in range(len(SPECIALS), vocab_size)]
    convs = []
    for i in range(n):
        q = " ".join(rng.choices(words, k=24))
        a = " ".join(rng.choices(words, k=seq_len + 64))
        convs.append(Conversation(id=f"g{i}", turns=[Turn(role="user", text=q), Turn(role="assistant", text=a)]))
    write_conversations(convs, path)
    return path


def _peak(device: str) -> dict:
    import torch

    out = {"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}
    if device == "cuda":
        out["peak_gpu_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        out["peak_gpu_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
    return out


def child_ours(args: argparse.Namespace) -> dict:
    import torch

    from studyabroadgpt.train.config import TrainConfig
    from studyabroadgpt.train.trainer import LoRARecipe

    dev = device_info()
    cfg = TrainConfig(name="gpu-check-ours", output_dir=str(Path(args.workdir) / "runs"), model=args.model_dir,
                      quantization="nf4", precision="auto", dataset=args.data, seq_len=args.seq_len,
                      batch_size=args.batch, grad_accum=1, epochs=100, max_steps=args.steps, lr=2e-4,
                      max_grad_norm=0.3, optimizer="auto", gradient_checkpointing=True, save_steps=10**6,
                      threads=None if dev["device"] == "cuda" else 2, seed=42)
    recipe = LoRARecipe(cfg, overwrite=True)
    recipe.setup()
    if dev["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()  # the peak of training, not of loading
    recipe.train()
    recipe.save()
    rows = [json.loads(x) for x in (recipe.run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = rows[1:] or rows
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in timed)
    return {"trainer": "ours", "steps": len(timed), "tokens": sum(r["tokens"] for r in timed),
            "tokens_per_s": round(sum(r["tokens"] for r in timed) / seconds, 2),
            "first_loss": rows[0]["loss"], "last_loss": rows[-1]["loss"], **_peak(dev["device"])}


def child_trl(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from studyabroadgpt import models
    from studyabroadgpt.data.load import load_valid

    dev = device_info()
    cuda = dev["device"] == "cuda"
    dtype = "bfloat16" if dev["bf16"] else "float16"
    model, tok = models.load(args.model_dir, quantization="nf4", dtype=dtype,
                             device_map={"": 0} if cuda else None)
    tok.chat_template = CHATML_WITH_GENERATION
    if not cuda:
        torch.set_num_threads(2)
    data = Dataset.from_list([{"messages": c.messages()} for c in load_valid(args.data).conversations])
    config = SFTConfig(
        output_dir=str(Path(args.workdir) / "trl"), use_cpu=not cuda, bf16=dev["bf16"], fp16=not dev["bf16"],
        per_device_train_batch_size=args.batch, gradient_accumulation_steps=1, max_length=args.seq_len,
        assistant_only_loss=True, packing=False, gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        optim="adamw_bnb_8bit" if cuda else "adamw_torch", learning_rate=2e-4, max_grad_norm=0.3,
        lr_scheduler_type="linear", max_steps=args.steps, logging_steps=1,
        save_strategy="no", report_to=[], seed=42, dataloader_num_workers=0, dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tok,
                         peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS,
                                                task_type="CAUSAL_LM"))
    from trl_timing import TRLTiming  # the timing bench_train.py uses too

    timing = TRLTiming(trainer, cuda=cuda)
    trainer.train()
    res = timing.result()
    return {**res, "tokens_per_s": round(res["tokens_per_s"], 2), **_peak(dev["device"])}


def plan_estimate(args: argparse.Namespace, arch: dict) -> dict:
    from studyabroadgpt.train.config import load_train_config
    from studyabroadgpt.train.plan import estimate_memory

    cfg = load_train_config(ROOT / "configs" / "mistral-7b-qlora-t4.yaml",
                            [f"seq_len={args.seq_len}", f"batch_size={args.batch}"])
    # every token of these rows is in the assistant turn, so nearly all positions are trained
    est = estimate_memory(cfg, arch, args.batch, trained_fraction=0.98)
    return {"total_gb": round(est.total_gb, 3), "weights_gb": round(est.weights_gb, 3),
            "lora_gb": round(est.lora_gb, 3), "activations_gb": round(est.activations_gb, 3),
            "logits_gb": round(est.logits_gb, 3), "overhead_gb": round(est.overhead_gb, 3)}


def run_child(kind: str, args: argparse.Namespace) -> dict:
    result = Path(args.workdir) / f"{kind}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", kind, "--result", str(result), "--model-dir", args.model_dir,
           "--data", args.data, "--seq-len", str(args.seq_len), "--batch", str(args.batch), "--steps",
           str(args.steps), "--workdir", args.workdir]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"trainer": kind, "error": proc.stderr[-3000:]}
    res = json.loads(result.read_text())
    res["process_wall_s"] = round(time.monotonic() - t0, 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="mistral-7b-v0.3")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per trainer (the first is not timed)")
    ap.add_argument("--trainers", default="ours,trl")
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "gpu-check"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "gpu_check.json"))
    ap.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT / "src"))
    if args.child:
        res = (child_ours if args.child == "ours" else child_trl)(args)
        Path(args.result).write_text(json.dumps(res))
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    arch = ARCHS[args.arch]
    t0 = time.monotonic()
    args.model_dir = str(build_model(args.arch, work / f"model-{args.arch}"))
    build_s = time.monotonic() - t0
    args.data = str(write_data(work / "data.jsonl", arch["vocab_size"], args.seq_len,
                               n=args.batch * (args.steps + 1)))
    runs = [run_child(kind, args) for kind in args.trainers.split(",")]
    plan = plan_estimate(args, arch)
    results = {"arch": args.arch, "architecture": arch, "seq_len": args.seq_len, "batch": args.batch,
               "steps": args.steps, "device": device_info(), "model_build_s": round(build_s, 1),
               "plan_estimate": plan, "runs": runs, "load_average": os.getloadavg()}
    for r in runs:
        peak = r.get("peak_gpu_allocated_gb")
        if peak:
            r["measured_over_plan"] = round(peak / plan["total_gb"], 3)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    dev = results["device"]
    print(f"{args.arch} on {dev['name']}: seq {args.seq_len} x batch {args.batch}, NF4 + LoRA r16 (7 projections), "
          f"gradient checkpointing; plan estimate {plan['total_gb']:.2f} GB")
    print(f"{'trainer':8} {'tokens/s':>9} {'peak GPU':>9} {'peak RSS':>9} {'loss first→last':>18}")
    for r in runs:
        if "error" in r:
            print(f"{r['trainer']:8} FAILED: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'}")
            continue
        gpu = f"{r['peak_gpu_allocated_gb']:8.2f}G" if "peak_gpu_allocated_gb" in r else f"{'-':>9}"
        print(f"{r['trainer']:8} {r['tokens_per_s']:9.1f} {gpu} {r['peak_rss_gb']:8.2f}G "
              f"{r['first_loss']:8.4f}→{r['last_loss']:.4f}")
    print(f"→ {out}")
    if any("error" in r for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
