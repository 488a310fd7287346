"""Run outputs people and other stages read: metrics.jsonl, train_summary.json, loss.png, run_info.json."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..utils import atomic_write_json, atomic_write_jsonl, save_figure


class MetricsLog:
    """Append-only ``metrics.jsonl`` (one row per optimizer step, plus eval rows).

    On resume the rows logged after the checkpoint being resumed are dropped (atomically), so the file never
    holds two histories for the same step.
    """

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            self.rows = [r for r in _read_rows(path) if resume_step is not None and r["step"] <= resume_step]
        atomic_write_jsonl(path, self.rows)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()

    def train_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if "loss" in r]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of an existing metrics.jsonl. A run killed mid-append leaves a torn last line: skip unreadable lines
    (they belong to a step after the last checkpoint, which the resumed run logs again)."""
    import logging

    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            logging.getLogger(__name__).warning("%s:%d: unreadable metrics row skipped (torn write)", path, n)
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def summarize(rows: list[dict[str, Any]], *, base_model: str, tokens_seen: int, trained_tokens: int,
              wall_time_s: float, train_time_s: float, steps: int, epochs: float, stopped_by: str,
              fingerprint: str, seed: int, peak_mb: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    losses = [r["loss"] for r in rows]
    first, last = (losses[0], losses[-1]) if losses else (None, None)
    return {
        "base_model": base_model,
        "first_loss": first,
        "last_loss": last,
        "min_loss": min(losses) if losses else None,
        "loss_reduction_pct": round(100 * (first - last) / first, 2) if losses and first else None,
        "tokens_seen": tokens_seen,
        "trained_tokens": trained_tokens,
        "tokens_per_s": round(tokens_seen / train_time_s, 2) if train_time_s > 0 else None,
        "peak_memory_mb": round(peak_mb, 1),
        "wall_time_s": round(wall_time_s, 2),
        "steps": steps,
        "epochs": round(epochs, 4),
        "stopped_by": stopped_by,
        "dataset_fingerprint": fingerprint,
        "seed": seed,
        **(extra or {}),
    }


def plot_metrics(rows: list[dict[str, Any]], out: Path, title: str) -> Path | None:
    train = [r for r in rows if "loss" in r]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in train]
    fig, axes = plt.subplots(3, 1, figsize=(7, 7.5), sharex=True)
    axes[0].plot(steps, [r["loss"] for r in train], marker=".", label="train loss")
    evals = [r for r in rows if "eval_loss" in r]
    if evals:
        axes[0].plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], marker="o", label="eval loss")
    axes[0].set_ylabel("loss (assistant tokens)")
    axes[0].legend()
    axes[1].plot(steps, [r["lr"] for r in train], color="tab:orange")
    axes[1].set_ylabel("learning rate")
    axes[2].plot(steps, [r["grad_norm"] for r in train], color="tab:green")
    axes[2].set_ylabel("grad norm (pre-clip)")
    axes[2].set_xlabel("optimizer step")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    atomic_write_json(path, summary)
