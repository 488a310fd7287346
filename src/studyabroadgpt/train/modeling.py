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
    weights: str          # dtype the frozen (non-quantised) base weights are loaded in
    autocast: str | None  # accelerate mixed_precision value: "bf16", "fp16" or None
    why: str


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls in hardware (AVX512-BF16 or AMX); elsewhere they are emulated."""
    cpu = torch.cpu
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)


def choose_precision(cfg: TrainConfig, device: str) -> Precision:
    """16-bit frozen base + fp32 LoRA weights + autocast: matmuls run in 16-bit, Adam updates stay in fp32."""
    want = cfg.precision
    if want == "auto":
        if device == "cuda":
            major, minor = torch.cuda.get_device_capability()
            want = "bf16" if major >= 8 else "fp16"
            why = f"compute capability {major}.{minor} {'>=' if major >= 8 else '<'} 8.0"
        elif cpu_has_fast_bf16():
            # measured on a 2-core EPYC with AVX512-BF16: a 2048³ bf16 matmul 2.5x the fp32 one (136 vs 55
            # GFLOP/s, under load); 391-394 GFLOP/s bf16 on the quiet machine
            want, why = "bf16", "CPU with AVX512-BF16/AMX: bf16 autocast (bf16 matmuls 2.5x fp32 on a 2-core EPYC)"
        else:
            # Without AVX512-BF16 or AMX, PyTorch emulates bf16 matmuls: measured on an AVX2-only 2-core EPYC,
            # one SmolLM2 step (4 x 256 tokens) did not finish in 90 s of CPU in bf16; fp32 is the fast path.
            want, why = "fp32", "CPU without AVX512-BF16/AMX: bf16 would be emulated (many times slower), fp32"
    else:
        why = "set in the recipe"
    if want == "fp32":
        return Precision("float32", None, why)
    if device == "cpu" and want == "fp16":
        from ..config import ConfigError

        raise ConfigError("precision: fp16 needs a CUDA GPU; use bf16 or auto on CPU")
    # The frozen base is stored in the compute dtype: under autocast every matmul runs in 16-bit anyway, and fp32
    # base weights only add a 16-bit copy per layer kept alive for backward. Measured on the 2-core CPU with
    # SmolLM2-135M (seq 512): same tokens/s as fp32 weights + autocast, ~580 MB lower peak RSS. LoRA weights are
    # upcast to fp32 after wrapping (stable Adam updates).
    return Precision("bfloat16" if want == "bf16" else "float16", want, why)


def load_for_training(cfg: TrainConfig, device: str, sharded: bool = False) -> tuple[Any, Any, Precision]:
    """``sharded``: FSDP / DeepSpeed place the weights themselves, so no device_map is given then."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from .. import models

    prec = choose_precision(cfg, device)
    quant = None if cfg.quantization == "none" else cfg.quantization
    if not log.isEnabledFor(logging.DEBUG):
        # peft imports bitsandbytes, whose CPU backend warns that it cannot download an optional kernel from the
        # Hub; 4-bit training works without it (environment notes), so keep it out of the user's output.
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
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
    if prec.autocast:
        # PEFT casts each LoRA layer's input to the (fp32) LoRA weight dtype, and autocast casts it straight back
        # to 16-bit for the matmul: two activation-sized copies per projection forward and two more in backward.
        # Under autocast the cast changes nothing but time (dtype casts were 5 % of a bf16 step's self CPU time).
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in model.modules():
            if isinstance(module, BaseTunerLayer):
                module.cast_input_dtype_enabled = False
    if device == "cpu":
        from . import attention

        fold_lora_add(model)
        model.set_attn_implementation(attention.register())  # falls back to SDPA wherever it was not measured
    # The adapter records which base it belongs to: the source string the run used ("default", a path…).
    model.peft_config["default"].base_model_name_or_path = cfg.model
    return model, tok, prec


class _LoraLinear(torch.autograd.Function):
    """``x W^T + bias + scale * (x_a A^T) B^T`` as one autograd node, every tensor in one (compute) dtype.

    Against PEFT's composition (base linear, lora_A, lora_B, ``* scale``, ``+``) the LoRA product is added by
    the GEMM itself (``addmm_``'s alpha carries the scale), so there is no activation-sized LoRA output nor a
    multiply and an add over it; in backward the two input gradients (base and ``A``) are accumulated by the
    second GEMM into the first one's output instead of by autograd's separate add, and the scale lands on
    rank-r tensors only. ``x_a`` is the dropout-ed input, or None when dropout is off (the recipe default).
    """

    @staticmethod
    def forward(ctx, x, x_a, weight, bias, a_weight, b_weight, scale):
        out = torch.mm(x, weight.t()) if bias is None else torch.addmm(bias, x, weight.t())
        a = torch.mm(x if x_a is None else x_a, a_weight.t())
        out.addmm_(a, b_weight.t(), alpha=scale)
        ctx.save_for_backward(x, x_a, weight, a_weight, b_weight, a)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, g):
        x, x_a, weight, a_weight, b_weight, a = ctx.saved_tensors
        scale = ctx.scale
        g_a = torch.mm(g, b_weight).mul_(scale)          # rank-r: T x r
        g_b = torch.mm(g.t(), a).mul_(scale)             # out x r
        g_aw = torch.mm(g_a.t(), x if x_a is None else x_a)  # r x in
        g_x = torch.mm(g, weight)
        g_xa = None
        if x_a is None:
            g_x.addmm_(g_a, a_weight)
        else:
            g_xa = torch.mm(g_a, a_weight)
        return g_x, g_xa, None, None, g_aw, g_b, None


def _folded_lora_forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """PEFT's vanilla LoRA ``nn.Linear`` forward through :class:`_LoraLinear`; PEFT's own for anything else."""
    if (args or kwargs or self.disable_adapters or self.merged or len(self.active_adapters) != 1
            or self.active_adapters[0] in self.lora_variant or self.active_adapters[0] not in self.lora_A
            or any(p.requires_grad for p in self.base_layer.parameters())):  # the node gives the base no grad
        return type(self).forward(self, x, *args, **kwargs)
    name = self.active_adapters[0]
    base = self.base_layer
    # the dtype autocast would run the matmuls in; the casts of the (small) weights stay outside the node, so
    # autograd returns fp32 gradients to the fp32 LoRA weights
    dt = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    x2 = x.reshape(-1, x.shape[-1]).to(dt)
    dropout = self.lora_dropout[name]
    x_a = None if isinstance(dropout, nn.Identity) else dropout(x2)
    bias = None if base.bias is None else base.bias.to(dt)
    out = _LoraLinear.apply(x2, x_a, base.weight.to(dt), bias, self.lora_A[name].weight.to(dt),
                            self.lora_B[name].weight.to(dt), float(self.scaling[name]))
    return out.view(*x.shape[:-1], out.shape[-1])


def fold_lora_add(model: nn.Module) -> int:
    """Switch every plain LoRA ``nn.Linear`` to the folded forward; returns how many were switched.

    Only PEFT's ``lora.Linear`` over a plain ``nn.Linear`` (not 4-bit, whose kernels are not ours to reason
    about); anything unusual at call time (mixed adapters, variants, merged weights) takes PEFT's own forward.
    """
    import types

    from peft.tuners.lora.layer import Linear as LoraLinear

    n = 0
    for module in model.modules():
        if type(module) is LoraLinear and type(module.base_layer) is nn.Linear:
            module.forward = types.MethodType(_folded_lora_forward, module)
            n += 1
    return n


_HEAD_ROWS = 16  # rows per softmax block inside a head chunk (see _HeadCrossEntropy.forward)


class _HeadCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T`` against ``targets``, computed in row chunks.

    The gradient with respect to ``hidden`` is computed during the forward pass, chunk by chunk, so neither the
    full logits nor their softmax are ever kept for backward: the memory of the vocabulary head drops from
    O(rows × vocab) to O(chunk × vocab) at no extra compute (the same matmuls run, just earlier). The head weight
    is frozen (LoRA never targets it), so no weight gradient is needed.
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int,
                scale: float) -> torch.Tensor:
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") and hidden.device.type == "cpu" \
            else (torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else hidden.dtype)
        w = weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad = torch.empty_like(hidden, dtype=torch.float32) if ctx.needs_input_grad[0] else None
        for i in range(0, hidden.shape[0], chunk):
            h = hidden[i:i + chunk].to(dtype)
            if scale != 1.0:
                h = h * scale  # (h·s) wᵀ = s (h wᵀ): the scale on 576 columns, not on 49k
            t = targets[i:i + chunk]
            logits = h @ w.t()
            # The softmax passes run on _HEAD_ROWS rows at a time: one fused log-softmax (16-bit logits in, fp32
            # out), the target gather and an in-place exp on a block that stays in cache (16 x 49,152 fp32 =
            # 3 MB), the probabilities written back over the block's own 16-bit logits, which are not needed
            # again. Over a whole 256-row chunk the fp32 log-probabilities (50 MB) went to memory and back three
            # times: measured on the 2-core AMX Xeon, 256 x 49,152 chunk, the passes around the two matmuls took
            # 31.8 ms per chunk, 8.8 ms in blocks of 16 (32 rows: 10.2, 64: 27.2), with bit-identical gradients.
            for s in range(0, logits.shape[0], _HEAD_ROWS):
                blk = logits[s:s + _HEAD_ROWS]
                tb = t[s:s + _HEAD_ROWS]
                rows = torch.arange(tb.shape[0], device=tb.device)
                logp = torch.log_softmax(blk, dim=-1, dtype=torch.float32)
                total -= logp[rows, tb].sum()
                if grad is not None:
                    probs = logp.exp_()
                    probs[rows, tb] -= 1.0
                    blk.copy_(probs)
            if grad is not None:
                g = logits @ w
                grad[i:i + chunk] = g * scale if scale != 1.0 else g
        ctx.save_for_backward(grad)
        ctx.hidden_dtype = hidden.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (grad,) = ctx.saved_tensors
        g = None if grad is None else (grad * grad_out).to(ctx.hidden_dtype)
        return g, None, None, None, None


class TrainedPositionsLoss(nn.Module):
    """Wraps a PEFT causal LM; ``forward`` returns the *summed* cross-entropy over trained positions.

    It is a module (not a function) so DDP can wrap it: DDP only synchronises gradients for forwards that go
    through its own ``forward``.
    """

    def __init__(self, peft_model: nn.Module, chunk: int = 256):
        super().__init__()
        self.peft_model = peft_model
        base = peft_model.get_base_model()
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        self.chunk = chunk
        self.logit_scale = float(getattr(base.config, "logit_scale", None) or 1.0)  # Cohere-style scaling
        # The fused path needs a plain frozen Linear head (not 4-bit, no bias); anything else takes the
        # straightforward route through the module.
        self.fused = (type(self.head) is nn.Linear and self.head.bias is None and not self.head.weight.requires_grad)

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.decoder(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
        keep = targets != -100
        h = hidden[keep]  # (n_trained, hidden): the head never sees untrained positions
        t = targets[keep]
        if self.fused:
            return _HeadCrossEntropy.apply(h, self.head.weight, t, self.chunk, self.logit_scale)
        logits = self.head(h).float() * self.logit_scale
        return nn.functional.cross_entropy(logits, t, reduction="sum")


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
