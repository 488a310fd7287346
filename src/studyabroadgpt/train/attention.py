"""Attention for 16-bit LoRA training on CPU: grouped-query attention as two plain matmuls, probabilities kept.

Why: with bf16 autocast on a CPU with AVX512-BF16, PyTorch's CPU flash-attention kernel
(``_scaled_dot_product_flash_attention_for_cpu``) is the slowest part of a step outside the matmuls — 28 % of
a SmolLM2-135M step's self CPU time at seq 512 in the torch profiler (docs/training.md). Its backward recomputes
the probabilities block by block; measured on this 2-core EPYC, quiet machine, one layer's (1, 9, 512, 64)
queries with 3 key/value heads, causal, bf16: flash forward 4.8–5.3 ms + backward 14.2–19.1 ms, against
6.4–7.2 ms + 6.0–7.2 ms here (4 interleaved rounds each).

How: the query heads that share a key/value head are stacked along the rows (``(B, Hkv, g·L, D)``), so each
product is one large bf16 matmul with no ``repeat_kv`` copy; the softmax probabilities (16-bit) are saved for
backward, which is then four matmuls and one fused ``_softmax_backward_data``. The price is memory: the
probabilities, ``B × Hq × L² × 2`` bytes per layer (SmolLM2-135M at seq 512: 4.7 MB per layer, 141 MB per
micro-batch), which is why this path is limited to ``MAX_LEN`` and to CPU training; everything else (GPU,
inference, fp32, dropout, longer rows) goes to transformers' SDPA unchanged.

Registered with transformers' ``AttentionInterface`` under ``NAME``, with SDPA's mask function, so the same
masks arrive: ``None`` for a plain causal row, a boolean block-diagonal mask (True = attend) for packed rows.
"""
from __future__ import annotations

from typing import Any

import torch

NAME = "sagpt_cpu_grouped"
MAX_LEN = 1024  # probabilities kept for backward grow with L²: 18.9 MB per SmolLM2 layer at 1024
_causal_cache: dict[int, torch.Tensor] = {}  # CPU only: row length → masked (upper) triangle


class GroupedAttention(torch.autograd.Function):
    """``softmax(q kᵀ · scale) v`` for grouped-query attention, with the positions where ``masked`` is True left
    out; ``masked`` broadcasts to (B, Hkv, g, L, L)."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, masked: torch.Tensor,
                scale: float) -> torch.Tensor:
        b, hq, length, d = q.shape
        hkv = k.shape[1]
        g = hq // hkv
        qg = (q * scale).reshape(b, hkv, g * length, d)  # the scale on the small side; one copy makes it dense
        s = torch.matmul(qg, k.transpose(-1, -2))
        s.view(b, hkv, g, length, length).masked_fill_(masked, float("-inf"))
        p = torch.softmax(s, dim=-1)  # the CPU kernel accumulates in fp32 and writes 16-bit
        o = torch.matmul(p, v)
        ctx.save_for_backward(qg, k, v, p)
        ctx.scale = scale
        return o.view(b, hq, length, d)

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor):
        qg, k, v, p = ctx.saved_tensors
        b, hkv = k.shape[:2]
        dog = do.reshape(b, hkv, -1, do.shape[-1]).to(v.dtype)
        dv = torch.matmul(p.transpose(-1, -2), dog)  # sums over the g query heads of each group
        dp = torch.matmul(dog, v.transpose(-1, -2))
        ds = torch._softmax_backward_data(dp, p, -1, p.dtype)  # p ⊙ (dp − rowsum(dp ⊙ p)), fused
        dq = torch.matmul(ds, k).mul_(ctx.scale)
        dk = torch.matmul(ds.transpose(-1, -2), qg)
        return dq.view(do.shape), dk, dv, None, None


def usable(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
           attention_mask: torch.Tensor | None, dropout: float, kwargs: dict) -> bool:
    """Only where it was measured to pay: CPU, 16-bit, training with gradients, square causal rows ≤ MAX_LEN."""
    length = query.shape[2]
    return (query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16)
            and key.dtype == value.dtype == query.dtype and torch.is_grad_enabled() and module.training
            and dropout == 0.0 and 1 < length <= MAX_LEN and key.shape[2] == length
            and query.shape[1] % key.shape[1] == 0 and getattr(module, "is_causal", True)
            and (attention_mask is None or attention_mask.dtype == torch.bool)
            and not any(kwargs.get(x) is not None for x in ("softcap", "sinks", "s_aux", "position_bias")))


def attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not usable(module, query, key, value, attention_mask, dropout, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    length = query.shape[2]
    if attention_mask is None:  # SDPA's mask function returns None for a plain causal row
        masked = _causal_cache.get(length)
        if masked is None:
            masked = _causal_cache[length] = torch.ones(length, length, dtype=torch.bool).triu(1)
    else:
        masked = ~attention_mask[:, :, None]  # (B, 1, L, L) → (B, 1, 1, L, L) against (B, Hkv, g, L, L)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = GroupedAttention.apply(query, key, value, masked, scale)
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Register the implementation (idempotent) and return its name for ``model.set_attn_implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
