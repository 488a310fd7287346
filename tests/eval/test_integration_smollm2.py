"""Acceptance: the full chain on the embedded SmolLM2-135M base vs a briefly trained LoRA, on CPU.

The "fine-tune" is built here with peft and a few optimizer steps (no dependency on the training code), so the
tuned system really differs from the base one.
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def short_finetune(tmp_path_factory, sample_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from studyabroadgpt import models
    from studyabroadgpt.data.load import load_valid

    torch.manual_seed(0)
    model, tok = models.load(models.DEFAULT_MODEL)  # a fresh copy: get_peft_model edits the model in place
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    convs = load_valid(sample_path).conversations
    text = tok.apply_chat_template(convs[0].messages()[:2], tokenize=False)
    batch = tok(text, return_tensors="pt", truncation=True, max_length=128)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(3):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    out = tmp_path_factory.mktemp("smollm2-lora") / "adapter"
    model.save_pretrained(out)
    return out


def test_full_chain_on_smollm2(short_finetune, sample_path, judge_url, tmp_path):
    from studyabroadgpt.eval.config import EvalConfig
    from studyabroadgpt.eval.run import run_all

    cfg = EvalConfig.model_validate({
        "output_dir": str(tmp_path),
        "prompts": {"path": str(sample_path), "limit": 3},
        "model": {"base": "default", "adapter": str(short_finetune)},
        "generation": {"max_new_tokens": 24, "batch_size": 3},
        "score": {"n_resamples": 300},
        "judge": {"endpoint": judge_url},
    })
    paths = run_all(cfg, show_progress=False)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["systems"] == ["base", "tuned"] and s["n_items"] == 3
    rows = [json.loads(x) for x in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    base = [r["response"] for r in rows if r["system"] == "base"]
    tuned = [r["response"] for r in rows if r["system"] == "tuned"]
    assert all(base) and base != tuned  # the real model answers, and the adapter changes what it says
    assert all(0 < r["new_tokens"] <= 24 and r["latency_s"] > 0 for r in rows)
    for metric in ("bleu", "rougeL_f1", "bertscore_f1"):
        assert s["metrics"][metric]["tuned"]["ci_low"] <= s["metrics"][metric]["tuned"]["mean"]
    assert s["judge"]["n_judgements"] == 6
    assert s["generation"]["tuned"]["tokens_per_s"] > 0
    # the claim audit ran when the knowledge base is installed, and is reported as unavailable otherwise
    assert "audit_error_rate" in s["metrics"] or "audit_error_rate" in s["unavailable"]
    assert paths["html"].exists() and paths["metrics"].exists()
