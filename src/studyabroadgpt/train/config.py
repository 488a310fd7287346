"""The training recipe: one pydantic model, loaded from ``configs/*.yaml`` plus ``key=value`` overrides.

Field names follow what QLoRA users already know from TRL / Axolotl (``lr``, ``grad_accum``, ``seq_len``…).
A recipe may list ``phases``; each phase overrides a few top-level fields and the adapter is carried from
one phase to the next (the paper's synthetic → curated curriculum).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import ConfigError, load_config

# The paper's LoRA targets: every linear projection of a Llama/Mistral block.
LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_TARGETS))


class Phase(BaseModel):
    """One stage of a curriculum; unset fields inherit the recipe's top-level value."""
    model_config = ConfigDict(extra="forbid")
    name: str
    dataset: str | None = None
    epochs: float | None = Field(None, gt=0)
    max_steps: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=1)
    grad_accum: int | None = Field(None, ge=1)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "smollm2-135m-cpu"
    output_dir: str = "runs"
    # Model source as models.load takes it ("default", "tiny-random", a directory, a .gguf or a Hub id).
    model: str = "default"
    # Architecture for `--plan` and for building a randomly initialised model without a download
    # (e.g. Mistral-7B's config.json fields); None reads the model's own config.
    architecture: dict[str, Any] | None = None
    quantization: Literal["none", "nf4"] = "none"
    # auto: bf16 on GPUs with compute capability >= 8.0, fp16 below that (T4, P100); on CPU bf16 autocast (bf16
    # frozen base, fp32 LoRA) only with AVX512-BF16/AMX, fp32 otherwise (bf16 is emulated there: many times slower).
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"

    dataset: str = "../shared/data/studyabroadgpt-sample/conversations.jsonl"
    eval_dataset: str | None = None
    seq_len: int = Field(1024, ge=16)
    # Synthesized training data (quickstart) carries the server's numbered-facts system prompt with distractors,
    # and answers that cite it (retrieval-augmented fine-tuning; synth.generate.Grounding). Ignored for data
    # you bring yourself.
    grounded: bool = True
    packing: bool = True
    batch_size: int = Field(1, ge=1)
    grad_accum: int = Field(4, ge=1)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)

    lr: float = Field(2e-4, gt=0)
    scheduler: str = "linear"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(0.3, gt=0)
    # auto: bitsandbytes 8-bit AdamW on CUDA (the paper's), torch AdamW on CPU.
    optimizer: Literal["auto", "adamw_torch", "adamw_8bit"] = "auto"
    gradient_checkpointing: bool = False
    lora: LoraSettings = Field(default_factory=LoraSettings)
    seed: int = 42
    threads: int | None = Field(2, ge=1)

    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    time_budget: str | None = None
    report_to: list[Literal["wandb", "mlflow", "tensorboard"]] = Field(default_factory=list)
    phases: list[Phase] = Field(default_factory=list)

    @field_validator("time_budget")
    @classmethod
    def _budget(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        names = [p.name for p in self.phases]
        if len(names) != len(set(names)):
            raise ValueError(f"phase names must be unique, got {names}")
        if self.eval_steps and not self.eval_dataset:
            raise ValueError("eval_steps is set but eval_dataset is not: nothing to evaluate on")
        return self

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def resolved_phases(self) -> list["TrainConfig"]:
        """One flat config per phase (a recipe without phases is a single phase)."""
        if not self.phases:
            return [self]
        out = []
        for p in self.phases:
            patch = {k: v for k, v in p.model_dump().items() if k != "name" and v is not None}
            out.append(self.model_copy(update={**patch, "phases": []}))
        return out

    def phase_names(self) -> list[str]:
        return [p.name for p in self.phases] or ["main"]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)", re.IGNORECASE)


def parse_duration(text: str | float | int) -> float:
    """``"8h30m"`` / ``"90s"`` / ``"10m"`` / ``"1.5h"`` / a plain number of seconds → seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    s = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = _DURATION.findall(s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"time budget {text!r} is not a duration like '8h30m', '90m' or '45s'")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
    seconds = sum(float(n) * scale[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"time budget {text!r} must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds → ``"1h05m"`` / ``"2m03s"``: what reports print, and what ``parse_duration`` reads back."""
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def load_train_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    return load_config(TrainConfig, path, overrides)


def dump_yaml(cfg: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


__all__ = ["TrainConfig", "LoraSettings", "Phase", "parse_duration", "format_duration", "load_train_config",
           "dump_yaml", "ConfigError"]
