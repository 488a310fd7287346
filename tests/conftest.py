"""Shared fixtures. Tests never reach a hub: HF_HUB_OFFLINE is forced before anything imports transformers."""
from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = SHARED / "data" / "studyabroadgpt-sample" / "conversations.jsonl"
BROKEN = Path(__file__).parent / "data" / "broken"


@pytest.fixture(scope="session")
def sample_path() -> Path:
    if not SAMPLE.exists():
        pytest.skip(f"shared sample not found at {SAMPLE}")
    return SAMPLE


@pytest.fixture(scope="session")
def broken_dir() -> Path:
    return BROKEN


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny random Llama with SmolLM2's tokenizer (model, tokenizer)."""
    from studyabroadgpt import models

    return models.load(models.TINY_MODEL)


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded SmolLM2-135M-Instruct (integration tests only)."""
    from studyabroadgpt import models

    return models.load(models.DEFAULT_MODEL)
