"""Attention for 16-bit LoRA training on CPU: grouped-query attention as two plain matmuls, probabilities kept.

Why: with bf16 autocast on a CPU with AVX512-BF16, PyTorch's CPU flash-attention kernel
(``_scaled_dot_product_flash_attention_for_cpu``) is the slowest part of a step outside the matmuls — 28 % of
a SmolLM2-135M step's self CPU time at seq 512 in the torch profiler (docs/training.md). Its backward recomputes
the probabilities block by block; measured on this 2-core EPYC, quiet machine, one layer's (1, 9, 512, 64)
queries with 3 key/value heads, causal, bf16: flash forward 4.8–5.3 ms + backward 14.2–19.1 ms, against
6.4–7.2 ms + 6.0–7.2 ms here (4 interleaved rounds each).

How: the query heads that share a key/value head are stacked along the rows (``(B, Hkv, g·L, D)``), so each
product is one large bf16 matmul with no ``repeat_kv`` copy; the softmax probabilities (16-bit) are saved for
backward, which is then four matmuls and one fused ``_softmax_backward_data``. The queries are taken in blocks of
``BLOCK`` rows and a block only meets the keys up to its last row (causal): at L = 512 two blocks do 3/4 of the
full L × L products, softmax and probabilities, at L = 1024 four do 5/8. Measured on this session's 2-core Xeon VM
with AMX-BF16, SmolLM2's (1, 9, L, 64) queries with 3 key/value heads, forward + backward, CPU time, 3 interleaved
rounds: at L = 512 10.4 / 13.7 / 9.2 ms unblocked against 8.2 / 9.6 / 8.4 ms in blocks of 256 (8.9 / 8.2 / 8.7 ms
in blocks of 128). The output is written straight into the ``(B, L, H, D)`` layout the attention module reshapes,
and dq into the layout the query projection produced, which saves the transposing copies; the blocks' partial
key/value gradients are summed in fp32. The price is memory: the probabilities, up to ``B × Hq × L² × 2`` bytes
per layer (SmolLM2-135M at seq 512: 3.5 MB per layer in two blocks), which is why this path is limited to
``MAX_LEN`` and to CPU training; everything else (GPU, inference, fp32, dropout, longer rows) goes to
transformers' SDPA unchanged.

Registered with transformers' ``AttentionInterface`` under ``NAME``, with SDPA's mask function, so the same
masks arrive: ``None`` for a plain causal row, a boolean block-diagonal mask (True = attend) for packed rows.
"""
from __future__ import annotations

from typing import Any

import torch

NAME = "sagpt_cpu_grouped"
MAX_LEN = 1024  # probabilities kept for backward grow with L²: ≤ 18.9 MB per SmolLM2 layer at 1024
BLOCK = 256  # query rows per block (measured above: 256 and 128 alike at L = 512, fewer calls with 256)
_causal_cache: dict[int, torch.Tensor] = {}  # CPU only: row length → masked (upper) triangle


class GroupedAttention(torch.autograd.Function):
    """``softmax(q kᵀ · scale) v`` for grouped-query attention, with the positions where ``masked`` is True left
    out; ``masked`` broadcasts to (B, Hkv, g, L, L). ``causal_only``: ``masked`` is the plain causal triangle
    (L, L), so keys before a block's first row are all visible and only its diagonal square is masked.

    q is (B, Hq, L, D), k and v (B, Hkv, L, D); the output is (B, L, Hq, D). Query blocks of ``block`` rows each
    meet the keys up to their own last row only; with ``block`` ≥ L it is one block over the whole row.
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, masked: torch.Tensor,
                scale: float, block: int = BLOCK, causal_only: bool = False) -> torch.Tensor:
        b, hq, length, d = q.shape
        hkv = k.shape[1]
        g = hq // hkv
        k, v = k.contiguous(), v.contiguous()  # once, not inside every block's matmul
        out = q.new_empty(b, length, hq, d)
        bounds = [(a, min(a + block, length)) for a in range(0, length, block)]
        saved = []
        for a, e in bounds:
            n = e - a
            qg = q.new_empty(b, hkv, g * n, d)  # the scale on the small side, written in the stacked layout
            torch.mul(q[:, :, a:e], scale, out=qg.view(b, hq, n, d))
            s = torch.matmul(qg, k[:, :, :e].transpose(-1, -2))
            s5 = s.view(b, hkv, g, n, e)
            if causal_only:
                s5[..., a:e].masked_fill_(masked[a:e, a:e], float("-inf"))
            else:
                s5.masked_fill_(masked[..., a:e, :e], float("-inf"))
            p = torch.softmax(s, dim=-1)  # the CPU kernel accumulates in fp32 and writes 16-bit
            out[:, a:e].copy_(torch.matmul(p, v[:, :, :e]).view(b, hq, n, d).transpose(1, 2))
            saved += [qg, p]
        ctx.save_for_backward(k, v, *saved)
        ctx.bounds, ctx.scale, ctx.q_shape = bounds, scale, q.shape
        return out

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor):
        k, v, *saved = ctx.saved_tensors
        b, hq, length, d = ctx.q_shape
        hkv = k.shape[1]
        g = hq // hkv
        dq = dout.new_empty(b, length, hq, d, dtype=v.dtype).transpose(1, 2)  # the layout q was made in
        # every block adds to the keys up to its last row: 16-bit inputs sum their blocks in fp32
        acc = torch.float32 if k.dtype in (torch.bfloat16, torch.float16) else k.dtype
        dk, dv = torch.zeros_like(k, dtype=acc), torch.zeros_like(v, dtype=acc)
        for i, (a, e) in enumerate(ctx.bounds):
            n = e - a
            qg, p = saved[2 * i], saved[2 * i + 1]
            dog = dout.new_empty(b, hkv, g * n, d, dtype=v.dtype)
            dog.view(b, hq, n, d).copy_(dout[:, a:e].transpose(1, 2))
            dv[:, :, :e] += torch.matmul(p.transpose(-1, -2), dog)  # sums over the g query heads of each group
            dp = torch.matmul(dog, v[:, :, :e].transpose(-1, -2))
            ds = torch._softmax_backward_data(dp, p, -1, p.dtype)  # p ⊙ (dp − rowsum(dp ⊙ p)), fused
            torch.mul(torch.matmul(ds, k[:, :, :e]).view(b, hq, n, d), ctx.scale, out=dq[:, :, a:e])
            dk[:, :, :e] += torch.matmul(ds.transpose(-1, -2), qg)
        return dq, dk.to(k.dtype), dv.to(v.dtype), None, None, None, None


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
    return GroupedAttention.apply(query, key, value, masked, scale, BLOCK, attention_mask is None), None


def register() -> str:
    """Register the implementation (idempotent) and return its name for ``model.set_attn_implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
