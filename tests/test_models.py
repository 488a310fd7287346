import torch
import pytest

from studyabroadgpt import models


def test_tiny_random_has_chat_template_and_generates(tiny_model):
    model, tok = tiny_model
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    msgs = [{"role": "user", "content": "Which English tests do UK universities accept?"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>assistant" in text
    ids = tok(text, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 5


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(models.ModelLoadError, match="config.json"):
        models.load(str(tmp_path))
    with pytest.raises(models.ModelLoadError, match="GGUF file not found"):
        models.load(str(tmp_path / "missing.gguf"))


def test_conversion_cache_is_reused(tmp_path):
    gguf = models.default_gguf_path()
    first = models.gguf_to_hf(gguf)
    mtime = (first / "model.safetensors").stat().st_mtime
    assert models.gguf_to_hf(gguf) == first
    assert (first / "model.safetensors").stat().st_mtime == mtime


@pytest.mark.integration
def test_default_is_real_smollm2_and_generates(smollm2):
    model, tok = smollm2
    n = sum(p.numel() for p in model.parameters())
    assert 130e6 < n < 140e6
    assert model.config.vocab_size == 49152
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
