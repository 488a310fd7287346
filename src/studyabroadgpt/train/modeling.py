"""Model set-up for training: precision choice, optional NF4, LoRA, and the trained-positions-only loss.

The loss module is the main CPU speed lever. A causal LM normally projects *every* position through the
vocabulary head (49,152 × 576 for SmolLM2) and materialises fp32 logits for all of them; with assistant-only
loss about half of those positions carry no loss. We run the decoder, gather the hidden states of the positions
that have a target, and apply the head to those rows only — less compute and far smaller logits.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Precision:
    weights: str          # dtype the (non-quantised) weights are loaded in
    autocast: str | None  # accelerate mixed_precision value: "bf16", "fp16" or None
    why: str


def choose_precision(cfg: TrainConfig, device: str) -> Precision:
    """fp32 master weights + autocast: LoRA params stay fp32 (stable Adam updates), matmuls run in 16-bit."""
    want = cfg.precision
    if want == "auto":
        if device == "cuda":
            major, minor = torch.cuda.get_device_capability()
            want = "bf16" if major >= 8 else "fp16"
            why = f"compute capability {major}.{minor} {'>=' if major >= 8 else '<'} 8.0"
        else:
            want, why = "bf16", "CPU: fp32 weights + bf16 autocast measured fastest (environment notes)"
    else:
        why = "set in the recipe"
    if want == "fp32":
        return Precision("float32", None, why)
    if cfg.quantization == "nf4" or device == "cuda":
        # On GPU keep the frozen base in 16-bit (half the memory); LoRA weights are upcast to fp32 below.
        return Precision("bfloat16" if want == "bf16" else "float16", want, why)
    return Precision("float32", want, why)


def load_for_training(cfg: TrainConfig, device: str, sharded: bool = False) -> tuple[Any, Any, Precision]:
    """``sharded``: FSDP / DeepSpeed place the weights themselves, so no device_map is given then."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from .. import models

    prec = choose_precision(cfg, device)
    quant = None if cfg.quantization == "none" else cfg.quantization
    loaded = models.load(cfg.model, quantization=quant, dtype=prec.weights,
                         device_map={"": torch.cuda.current_device()} if device == "cuda" and not sharded else None)
    model, tok = loaded.model, loaded.tokenizer
    model.config.use_cache = False
    if quant:
        # Casts norms to fp32, freezes the base and (optionally) enables checkpointing with input grads.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        from ..config import ConfigError

        raise ConfigError(f"lora.target_modules {cfg.lora.target_modules}: {exc}") from exc
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    # The adapter records which base it belongs to: the source string the run used ("default", a path…).
    model.peft_config["default"].base_model_name_or_path = cfg.model
    return model, tok, prec


class TrainedPositionsLoss(nn.Module):
    """Wraps a PEFT causal LM; ``forward`` returns the *summed* cross-entropy over trained positions.

    It is a module (not a function) so DDP can wrap it: DDP only synchronises gradients for forwards that go
    through its own ``forward``.
    """

    def __init__(self, peft_model: nn.Module):
        super().__init__()
        self.peft_model = peft_model
        base = peft_model.get_base_model()
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        self.logit_scale = getattr(base.config, "logit_scale", None)  # Cohere-style models scale logits

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.decoder(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
        keep = targets != -100
        h = hidden[keep]  # (n_trained, hidden)
        logits = self.head(h).float()
        if self.logit_scale:
            logits = logits * self.logit_scale
        return nn.functional.cross_entropy(logits, targets[keep], reduction="sum")


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def build_optimizer(cfg: TrainConfig, model: nn.Module, device: str, lr: float) -> tuple[torch.optim.Optimizer, str]:
    params = [p for p in model.parameters() if p.requires_grad]
    kind = cfg.optimizer
    if kind == "auto":
        kind = "adamw_8bit" if device == "cuda" else "adamw_torch"
    if kind == "adamw_8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=cfg.weight_decay), kind
    return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay), kind
