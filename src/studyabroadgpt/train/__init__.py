"""QLoRA / LoRA fine-tuning with assistant-only loss, time-budget handoff and resume.

``run(config) -> Path`` trains in-process (the quickstart uses it); ``TrainConfig`` is the recipe model.
Imports are lazy so ``import studyabroadgpt.train`` does not pull torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import TrainConfig

__all__ = ["TrainConfig", "run"]


def run(config: Any, **kwargs: Any) -> Path:
    """Train with a ``TrainConfig`` (or dict / YAML path); returns the run directory. See ``trainer.run``."""
    from .trainer import run as _run

    return _run(config, **kwargs)
