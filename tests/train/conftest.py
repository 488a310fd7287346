"""Fixtures for the training tests: small conversation files and a fast tiny-model recipe."""
from __future__ import annotations

import os
from pathlib import Path

# Passive OpenMP waiting, as `sagpt train` sets it (effective only if torch is not loaded yet).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from studyabroadgpt.data.io import write_conversations
from studyabroadgpt.data.schema import Conversation, Turn


def make_convs(n: int, tag: str = "") -> list[Conversation]:
    out = []
    for i in range(n):
        turns = [Turn(role="user", text=f"Question {i}{tag}: do I need a visa to study in Germany?"),
                 Turn(role="assistant", text=f"Answer {i}{tag}: usually yes; check the official embassy source."),
                 Turn(role="user", text="And the blocked account?"),
                 Turn(role="assistant", text="The amount changes yearly; see the Federal Foreign Office page.")]
        if i % 3 == 0:
            turns.insert(0, Turn(role="system", text="You are a careful study-abroad advisor."))
        out.append(Conversation(id=f"c{i}{tag}", turns=turns))
    return out


@pytest.fixture()
def conv_factory():
    return make_convs


@pytest.fixture()
def small_data(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    write_conversations(make_convs(8), path)
    return path


@pytest.fixture()
def recipe(tmp_path: Path, small_data: Path) -> dict:
    """A tiny-model recipe (one thread: spinning OpenMP threads collapse on a busy 2-core machine)."""
    return {"name": "t", "output_dir": str(tmp_path / "runs"), "model": "tiny-random", "dataset": str(small_data),
            "seq_len": 128, "batch_size": 2, "grad_accum": 1, "epochs": 2, "lr": 2e-2, "warmup_ratio": 0.0,
            "save_steps": 2, "keep_checkpoints": 2, "threads": 1}


def overrides(d: dict) -> list[str]:
    return [f"{k}={v}" for k, v in d.items()]
