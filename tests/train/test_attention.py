"""The CPU grouped-query attention (train/attention.py): exact against a float64 reference, close to SDPA in bf16,
used only where it was measured, and the same packed-row loss and LoRA gradients as SDPA on the tiny model."""
from __future__ import annotations

import pytest
import torch

from studyabroadgpt.train import attention
from studyabroadgpt.train.attention import GroupedAttention


def reference(q, k, v, keep, scale):
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def block_diagonal(lengths: list[int]) -> torch.Tensor:
    """True = attend: causal inside each packed example, nothing across examples."""
    n = sum(lengths)
    keep = torch.zeros(n, n, dtype=torch.bool)
    start = 0
    for m in lengths:
        keep[start:start + m, start:start + m] = torch.ones(m, m, dtype=torch.bool).tril()
        start += m
    return keep


def inputs(dtype, length=20, b=2, hq=6, hkv=2, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda h: torch.randn(b, h, length, d, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    return make(hq), make(hkv), make(hkv), torch.randn(b, hq, length, d, generator=g, dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("block", [64, 8, 7])  # one block; query blocks that meet only the keys up to their end
@pytest.mark.parametrize("lengths", [[20], [7, 9, 4]])
def test_grouped_attention_matches_float64_reference(lengths, block):
    keep = block_diagonal(lengths)
    q, k, v, do = inputs(torch.float64)
    # a plain causal row may take the causal-only masking (only each block's diagonal square is masked)
    out = GroupedAttention.apply(q, k, v, ~keep, 0.3, block, len(lengths) == 1).transpose(1, 2)
    out.backward(do)
    got = [out.detach(), q.grad, k.grad, v.grad]
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    ref = reference(q2, k2, v2, keep, 0.3)
    ref.backward(do)
    for name, a, b in zip(["out", "dq", "dk", "dv"], got, [ref.detach(), q2.grad, k2.grad, v2.grad]):
        assert torch.allclose(a, b, atol=1e-10), name


@pytest.mark.parametrize("block", [64, 16])
def test_grouped_attention_bf16_close_to_sdpa(block):
    q, k, v, do = inputs(torch.bfloat16, length=64, seed=3)
    out = GroupedAttention.apply(q, k, v, torch.ones(64, 64, dtype=torch.bool).triu(1), 8 ** -0.5, block,
                                 True).transpose(1, 2)
    out.backward(do)
    got = [out.detach(), q.grad, k.grad, v.grad]
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    ref = torch.nn.functional.scaled_dot_product_attention(q2, k2, v2, is_causal=True, enable_gqa=True)
    ref.backward(do)
    for name, a, b in zip(["out", "dq", "dk", "dv"], got, [ref.detach(), q2.grad, k2.grad, v2.grad]):
        err = float((a.float() - b.float()).abs().max() / b.float().abs().max())
        assert err < 3e-2, (name, err)  # bf16 rounding of two different kernels


def test_used_only_where_measured(monkeypatch, tiny_model):
    """16-bit CPU training with gradients takes the grouped path; fp32, eval and no-grad take SDPA."""
    model, _ = tiny_model
    calls = []
    real = GroupedAttention.apply
    monkeypatch.setattr(GroupedAttention, "apply", lambda *a: calls.append(1) or real(*a))
    name = attention.register()
    layer = model.model.layers[0].self_attn
    q, k, v, _ = inputs(torch.bfloat16, length=16, b=1, hq=4, hkv=2, d=8)
    layer.train()
    out, _ = attention.attention_forward(layer, q, k, v, None)
    assert calls and out.shape == (1, 16, 4, 8)
    calls.clear()
    attention.attention_forward(layer, q.float(), k.float(), v.float(), None)
    with torch.no_grad():
        attention.attention_forward(layer, q, k, v, None)
    layer.eval()
    attention.attention_forward(layer, q, k, v, None)
    layer.train()
    attention.attention_forward(layer, q, k, v, torch.zeros(1, 1, 16, 16))  # a float (additive) mask
    assert not calls and name == attention.NAME


@pytest.mark.parametrize("block", [attention.BLOCK, 8])  # one block for the 21-token row; three query blocks
def test_tiny_model_packed_loss_and_lora_grads_match_sdpa(monkeypatch, block):
    """Two examples packed in one row, bf16 base under bf16 autocast (as the CPU recipe trains), train mode: the
    same loss and LoRA gradients as SDPA."""
    monkeypatch.setattr(attention, "BLOCK", block)
    from peft import LoraConfig, get_peft_model

    from studyabroadgpt import models

    from studyabroadgpt.train.batching import collate
    from studyabroadgpt.train.formatting import IGNORE, Example
    from studyabroadgpt.train.modeling import TrainedPositionsLoss

    # a bf16 base, as the recipe loads it: with an fp32 base the rotary tables upcast q and k to fp32 and the
    # grouped path (16-bit only) is not taken
    loaded = models.load(models.TINY_MODEL, dtype="bfloat16")
    model, tok = loaded.model, loaded.tokenizer
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    try:
        loss_mod = TrainedPositionsLoss(peft).train()
        g = torch.Generator().manual_seed(1)
        exs = []
        for n in (12, 9):
            ids = torch.randint(5, 1000, (n,), generator=g).tolist()
            exs.append(Example("x", ids, [IGNORE] * 3 + ids[3:]))
        batch = collate(exs, [[0, 1]], pad_id=tok.pad_token_id)
        calls = []
        real = GroupedAttention.apply
        monkeypatch.setattr(GroupedAttention, "apply", lambda *a: calls.append(1) or real(*a))
        results = {}
        for impl in ("sdpa", attention.register()):
            peft.get_base_model().set_attn_implementation(impl)
            peft.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_mod(**batch)
            loss.backward()
            grads = torch.cat([p.grad.flatten() for p in peft.parameters() if p.requires_grad])
            results[impl] = (float(loss.detach()), grads)
        assert len(calls) == len(peft.get_base_model().model.layers)  # the grouped run, every layer
        (l1, g1), (l2, g2) = results.values()
        assert abs(l1 - l2) / abs(l1) < 1e-2
        assert float((g1 - g2).norm() / g1.norm()) < 5e-2
    finally:
        peft.get_base_model().set_attn_implementation("sdpa")
