"""``train --plan --gpu t4``: peak-memory and time-per-epoch estimate for a recipe on a named GPU.

Nothing is downloaded: the architecture comes from the recipe's ``architecture`` block, a built-in table for the
paper's Mistral-7B, or the local model's config.json. The memory model (bytes, per component):

* frozen base: linear layers of the blocks at 4.127 bits with NF4 + double quant (4 bits + 8-bit absmax per 64
  weights + a second-level constant), else at the weights dtype; embeddings / head / norms are not quantised
  and ``prepare_model_for_kbit_training`` upcasts them to fp32;
* LoRA: fp32 weights + fp32 grads + optimizer state (2 bytes/param for 8-bit AdamW, 8 for torch AdamW);
* activations, per token and layer, in 16-bit: what backward keeps for LoRA over frozen linears (inputs of the
  q/k/v, o, gate/up and down projections, attention q/k/v/out, the MLP's gate/up/act products, fp32 norm inputs)
  ≈ 9·H + 2·kv + 4·I values. With gradient checkpointing only each layer's input (H) is kept, plus one layer
  recomputed at a time;
* logits: only the trained positions go through the head in our trainer (the rest never materialise): 16-bit
  output, fp32 copy, log-softmax and its gradient ≈ 14 bytes × vocab per trained token;
* CUDA context and allocator slack: 0.6 GB + 10 %.

Time: FLOPs per token ≈ 2·N forward + 2·N backward (input gradients only: the base is frozen) + 2·N again for
recomputation with checkpointing, plus attention; divided by the GPU's dense 16-bit peak × a stated utilisation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TrainConfig, format_duration


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float   # usable memory as torch reports it
    tflops_16: float   # dense fp16/bf16 tensor throughput
    capability: float
    note: str = ""


GPUS: dict[str, GPU] = {
    "t4": GPU("NVIDIA T4 16 GB", 15.0, 65.0, 7.5, "fp16 only (no bf16)"),
    "p100": GPU("NVIDIA P100 16 GB", 15.9, 18.7, 6.0, "fp16, no tensor cores"),
    "a10g": GPU("NVIDIA A10G 24 GB", 22.0, 70.0, 8.6),
    "a100-40": GPU("NVIDIA A100 40 GB", 39.4, 312.0, 8.0),
    "a100-80": GPU("NVIDIA A100 80 GB", 79.2, 312.0, 8.0),
    "h100": GPU("NVIDIA H100 80 GB", 79.1, 989.0, 9.0, "SXM dense bf16"),
}

# Utilisation we assume for QLoRA: 4-bit weights are dequantised before every matmul and LoRA adds many small
# kernels, so measured MFU sits well below full fine-tuning's ~50 %.
UTILISATION = {"nf4": 0.25, "none": 0.35}

# mistralai/Mistral-7B-Instruct-v0.3 config.json (architecture fields only), so planning needs no download.
MISTRAL_7B_V03 = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32768,
                  "tie_word_embeddings": False, "head_dim": 128}
KNOWN = {"mistralai/Mistral-7B-Instruct-v0.3": MISTRAL_7B_V03, "mistralai/Mistral-7B-v0.3": MISTRAL_7B_V03}


def architecture(cfg: TrainConfig) -> dict[str, Any]:
    if cfg.architecture:
        return cfg.architecture
    if cfg.model in KNOWN:
        return KNOWN[cfg.model]
    from .. import models

    path = Path(models.resolve(cfg.model)) / "config.json"
    if not path.exists():
        from ..config import ConfigError

        raise ConfigError(f"--plan needs the architecture of {cfg.model!r}: add an `architecture:` block "
                          "(hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
                          "num_key_value_heads, vocab_size) to the recipe")
    return json.loads(path.read_text())


@dataclass
class Estimate:
    batch_size: int
    weights_gb: float
    lora_gb: float
    activations_gb: float
    logits_gb: float
    overhead_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.lora_gb + self.activations_gb + self.logits_gb + self.overhead_gb


def _counts(arch: dict[str, Any], targets: list[str], r: int) -> dict[str, float]:
    h, i, layers = arch["hidden_size"], arch["intermediate_size"], arch["num_hidden_layers"]
    heads, kv_heads = arch["num_attention_heads"], arch.get("num_key_value_heads", arch["num_attention_heads"])
    head_dim = arch.get("head_dim") or h // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
              "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
    linear = layers * sum(a * b for a, b in shapes.values())
    lora = layers * sum(r * (a + b) for name, (a, b) in shapes.items() if name in targets)
    vocab = arch["vocab_size"]
    embed = vocab * h * (1 if arch.get("tie_word_embeddings", False) else 2)
    return {"h": h, "i": i, "layers": layers, "kv": kv, "linear": linear, "lora": lora, "embed": embed,
            "vocab": vocab, "norms": layers * 2 * h + h}


def estimate_memory(cfg: TrainConfig, arch: dict[str, Any], batch_size: int, trained_fraction: float = 0.55,
                    optimizer_bytes: float | None = None) -> Estimate:
    c = _counts(arch, cfg.lora.target_modules, cfg.lora.r)
    gb = 1024 ** 3
    nf4 = cfg.quantization == "nf4"
    linear_bytes = 4.127 / 8 if nf4 else 2.0
    other_bytes = 4.0 if nf4 else 2.0  # prepare_model_for_kbit_training upcasts non-quantised params to fp32
    weights = c["linear"] * linear_bytes + (c["embed"] + c["norms"]) * other_bytes
    opt = optimizer_bytes if optimizer_bytes is not None else (8.0 if cfg.optimizer == "adamw_torch" else 2.0)
    lora = c["lora"] * (4 + 4 + opt)
    tokens = batch_size * cfg.seq_len
    per_layer_token = (9 * c["h"] + 2 * c["kv"] + 4 * c["i"]) * 2
    if cfg.gradient_checkpointing:
        acts = tokens * (c["layers"] * c["h"] * 2 + per_layer_token)
    else:
        acts = tokens * c["layers"] * per_layer_token
    logits = tokens * trained_fraction * c["vocab"] * 14
    base = (weights + lora + acts + logits) / gb
    return Estimate(batch_size, weights / gb, lora / gb, acts / gb, logits / gb, 0.6 + 0.1 * base)


def flops_per_token(cfg: TrainConfig, arch: dict[str, Any], trained_fraction: float = 0.55) -> float:
    c = _counts(arch, cfg.lora.target_modules, cfg.lora.r)
    n = c["linear"] + c["lora"]
    head = 2 * c["h"] * c["vocab"] * trained_fraction
    attn = 2 * 2 * c["layers"] * cfg.seq_len / 2 * (arch["num_attention_heads"] * (arch.get("head_dim") or
                                                                                  c["h"] // arch["num_attention_heads"]))
    forward = 2 * n + head + attn
    passes = 3 if cfg.gradient_checkpointing else 2  # forward + input-grad backward (+ recompute)
    return forward * passes


def dataset_tokens(cfg: TrainConfig) -> tuple[int, float, str]:
    """Real tokens per epoch and trained fraction of the recipe's dataset, tokenized with the recipe's tokenizer
    when it is available offline, else with the embedded SmolLM2 tokenizer as a stand-in (said in the report)."""
    from ..data.load import load_valid
    from .formatting import encode_all

    dataset = cfg.phases[0].dataset if cfg.phases and cfg.phases[0].dataset else cfg.dataset
    if not Path(dataset).exists():
        return 0, 0.55, f"dataset {dataset} not found here: assuming every sample fills seq_len"
    from ..models import load_tokenizer

    try:
        tok, how = load_tokenizer(cfg.model), "the recipe's tokenizer"
    except Exception:
        tok = load_tokenizer("default")
        how = "SmolLM2's tokenizer as a stand-in (the recipe's is not available offline)"
    convs = load_valid(dataset).conversations
    examples, _ = encode_all(tok, convs, cfg.seq_len)
    tokens = sum(len(e) for e in examples)
    trained = sum(e.n_trained for e in examples)
    return tokens, trained / max(tokens, 1), f"{len(examples)} conversations from {dataset}, counted with {how}"


def plan_report(cfg: TrainConfig, gpu_name: str) -> str:
    from ..config import ConfigError

    key = gpu_name.lower()
    if key not in GPUS:
        raise ConfigError(f"--gpu {gpu_name!r}: choose one of {', '.join(GPUS)}")
    gpu = GPUS[key]
    arch = architecture(cfg)
    tokens, frac, data_note = dataset_tokens(cfg)
    est = estimate_memory(cfg, arch, cfg.batch_size, frac)
    fits = [b for b in range(1, 129) if estimate_memory(cfg, arch, b, frac).total_gb <= gpu.memory_gb]
    util = UTILISATION[cfg.quantization]
    fpt = flops_per_token(cfg, arch, frac)
    tok_s = gpu.tflops_16 * 1e12 * util / fpt
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if gpu.capability >= 8.0 else "fp16")
    c = _counts(arch, cfg.lora.target_modules, cfg.lora.r)
    lines = [
        f"Plan for recipe {cfg.name} on {gpu.name} ({gpu.memory_gb:.1f} GB usable; {gpu.note or 'bf16 capable'})",
        f"  model {cfg.model}: {(c['linear'] + c['embed'] + c['norms']) / 1e9:.2f}B params, LoRA r={cfg.lora.r} "
        f"→ {c['lora'] / 1e6:.1f}M trainable; quantization {cfg.quantization}; compute {precision}",
        f"  seq_len {cfg.seq_len} × batch {cfg.batch_size} (× accum {cfg.grad_accum}); gradient checkpointing "
        f"{'on' if cfg.gradient_checkpointing else 'off'}",
        "  estimated peak memory:",
        f"    frozen weights   {est.weights_gb:6.2f} GB",
        f"    LoRA + optimizer {est.lora_gb:6.2f} GB",
        f"    activations      {est.activations_gb:6.2f} GB",
        f"    logits (trained positions only, {frac:.0%}) {est.logits_gb:6.2f} GB",
        f"    context/slack    {est.overhead_gb:6.2f} GB",
        f"    total            {est.total_gb:6.2f} GB  →  {'fits' if est.total_gb <= gpu.memory_gb else 'DOES NOT FIT'}",
    ]
    other = cfg.model_copy(update={"gradient_checkpointing": not cfg.gradient_checkpointing})
    alt = estimate_memory(other, arch, cfg.batch_size, frac)
    lines.append(f"    (with checkpointing {'off' if cfg.gradient_checkpointing else 'on'}: {alt.total_gb:.2f} GB)")
    effective = cfg.batch_size * cfg.grad_accum
    if fits:
        best = max(fits)
        accum = max(1, round(effective / best))
        lines.append(f"  largest batch that fits: {best} (e.g. batch_size={best} grad_accum={accum} → "
                     f"{best * accum} sequences per step; the recipe has {effective})")
    else:
        lines.append("  largest batch that fits: none — shorten seq_len or enable gradient checkpointing")
    lines.append(f"  throughput: {fpt / 1e9:.1f} GFLOP/token at {util:.0%} of {gpu.tflops_16:.0f} TFLOP/s "
                 f"→ ~{tok_s:,.0f} tokens/s, ~{format_duration(1e6 / tok_s)} per million tokens")
    if tokens:
        per_epoch = tokens / tok_s
        lines.append(f"  time per epoch: ~{format_duration(per_epoch)} for {tokens:,} tokens ({data_note}); "
                     f"{cfg.epochs:g} epoch(s) ≈ {format_duration(per_epoch * cfg.epochs)}")
    else:
        per_1000 = format_duration(1000 * cfg.seq_len / tok_s)
        lines.append(f"  time per epoch: {data_note}; at {cfg.seq_len} tokens each, ~{per_1000} per 1,000 conversations")
    return "\n".join(lines)

