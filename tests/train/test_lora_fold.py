"""The folded LoRA add (train/modeling.fold_lora_add): the same outputs and gradients as PEFT's own forward,
exact in float64, close in bf16 autocast, and PEFT's forward wherever the fold does not apply."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from studyabroadgpt.train.modeling import _folded_lora_forward, fold_lora_add


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(24, 16, bias=False)
        self.up_proj = nn.Linear(16, 40, bias=True)  # a bias too: the base layer keeps it

    def forward(self, x):
        return self.up_proj(torch.relu(self.q_proj(x)))


def pair(dtype, dropout=0.0):
    """Two identical PEFT models (non-zero B, so A gets a gradient); the second folded."""
    from peft import LoraConfig, get_peft_model

    made = []
    for _ in range(2):
        torch.manual_seed(0)
        base = Block().to(dtype)
        made.append(get_peft_model(base, LoraConfig(r=4, lora_alpha=12, target_modules=["q_proj", "up_proj"],
                                                    lora_dropout=dropout, init_lora_weights=False)))
    for p in [*made[0].parameters(), *made[1].parameters()]:
        if p.requires_grad:  # LoRA weights fp32, as the recipe keeps them
            p.data = p.data.float()
    assert fold_lora_add(made[1]) == 2
    folded = [m for m in made[1].modules() if hasattr(m, "lora_A")]
    assert len(folded) == 2 and all(m.forward.__func__ is _folded_lora_forward for m in folded)
    return made


def run(model, x, autocast, seed=0):
    torch.manual_seed(seed)  # the same dropout masks for both models
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(x)
    out.float().pow(2).sum().backward()
    return [out.detach().float(), x.grad.float()] + [p.grad.float() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_float64_exact(dropout):
    peft_model, folded = pair(torch.float64, dropout)
    x = torch.randn(2, 7, 24, dtype=torch.float64)
    for p in list(peft_model.parameters()) + list(folded.parameters()):
        p.data = p.data.double()
    for a, b in zip(run(peft_model, x, False), run(folded, x, False)):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_bf16_autocast_close():
    peft_model, folded = pair(torch.bfloat16)
    x = torch.randn(2, 33, 24).bfloat16()
    ref, got = run(peft_model, x, True), run(folded, x, True)
    assert len(ref) == 2 + 4  # out, dx, A and B of both layers
    for i, (a, b) in enumerate(zip(ref, got)):
        err = float((a - b).abs().max() / a.abs().max())
        assert err < 2e-2, (i, err)  # bf16 rounding: PEFT rounds B(A(x)) and the scaled product, the fold does not


@pytest.mark.parametrize("state", ["disabled", "merged", "base trained"])
def test_falls_back_to_peft(state):
    peft_model, folded = pair(torch.float64)
    for p in list(peft_model.parameters()) + list(folded.parameters()):
        p.data = p.data.double()
    x = torch.randn(3, 24, dtype=torch.float64)
    for m in (peft_model, folded):
        if state == "disabled":
            m.base_model.disable_adapter_layers()
        elif state == "merged":
            m.base_model.merge_adapter()
        else:
            m.get_base_model().q_proj.base_layer.weight.requires_grad_(True)
    out, ref = folded(x), peft_model(x)
    assert torch.allclose(out, ref, atol=1e-12)
    if state == "base trained":  # PEFT's forward, so the base weight gets its gradient
        out.sum().backward()
        assert folded.get_base_model().q_proj.base_layer.weight.grad is not None
