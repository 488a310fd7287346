from __future__ import annotations

import pytest

from .judge_server import serve


@pytest.fixture(scope="session")
def judge_url():
    with serve() as url:
        yield url


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory):
    """A LoRA adapter for the tiny-random model, built with peft directly (random B so it changes outputs)."""
    from peft import LoraConfig, get_peft_model

    from studyabroadgpt import models

    model, _ = models.load(models.TINY_MODEL)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False,
                     task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    peft_model.save_pretrained(out)
    return out
