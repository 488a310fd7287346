"""Report figures (matplotlib, Agg backend): each function writes one PNG and returns its path (or None)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..utils import save_figure
from .metrics import METRICS

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]
VERDICT_COLORS = {"better": "#2e7d32", "worse": "#c62828"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_bars(summary: dict[str, Any], path: Path) -> Path | None:
    """One panel per metric: mean per system with its 95% bootstrap CI; the title carries the verdict."""
    metrics = [m for m in METRICS if m in summary["metrics"]]
    if not metrics:
        return None
    plt = _plt()
    systems = summary["systems"]
    verdicts: dict[str, list[dict]] = {}
    for c in summary.get("comparisons", []):
        verdicts.setdefault(c["metric"], []).append(c)
    cols = 3
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        vals = summary["metrics"][metric]
        means = [vals[s]["mean"] for s in systems]
        err = [[max(0.0, vals[s]["mean"] - vals[s]["ci_low"]) for s in systems],
               [max(0.0, vals[s]["ci_high"] - vals[s]["mean"]) for s in systems]]
        ax.bar(range(len(systems)), means, yerr=err, capsize=5, color=COLORS[:len(systems)])
        ax.set_xticks(range(len(systems)), systems)
        comps = verdicts.get(metric, [])
        title = METRICS[metric].label + "".join(f"\n{c['b']} vs {c['a']}: {c['verdict']}" for c in comps)
        # colour only a single verdict: with several, one colour would misdescribe the others
        colour = VERDICT_COLORS.get(comps[0]["verdict"], "black") if len(comps) == 1 else "black"
        ax.set_title(title, fontsize=9, color=colour)
        top = max([vals[s]["ci_high"] for s in systems] + means)
        ax.set_ylim(bottom=min(0.0, *means), top=top * 1.1 if top > 1e-9 else 1.0)
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle("Metric means with 95% bootstrap CIs", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def judge_bar(judge: dict[str, Any] | None, path: Path) -> Path | None:
    if not judge or not judge.get("n_judged_items"):
        return None
    plt = _plt()
    labels = {"win": f"{judge['b']} preferred", "tie": "tie", "loss": f"{judge['a']} preferred"}
    keys = ["win", "tie", "loss"]
    rates = [judge["rates"][k]["rate"] for k in keys]
    err = [[max(0.0, r - judge["rates"][k]["ci_low"]) for r, k in zip(rates, keys)],
           [max(0.0, judge["rates"][k]["ci_high"] - r) for r, k in zip(rates, keys)]]
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    ax.barh(range(3), rates, xerr=err, capsize=5, color=["#55A868", "#BBBBBB", "#C44E52"])
    ax.set_yticks(range(3), [f"{labels[k]} ({judge['counts'][k]})" for k in keys])
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of {judge['n_judged_items']} items (95% Wilson CI)")
    title = "Blind pairwise judge"
    if judge.get("bowker"):
        b = judge["bowker"]
        title += f" — McNemar–Bowker χ²({b['df']})={b['chi2']:.2f}, p={b['p_value']:.3g}"
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def histograms(values: dict[str, list[float]], xlabel: str, title: str, path: Path) -> Path | None:
    values = {s: [v for v in vs if v is not None] for s, vs in values.items()}
    if not any(values.values()):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    allv = [v for vs in values.values() for v in vs]
    lo, hi = min(allv), max(allv)
    bins = 20 if hi > lo else 1
    for color, (system, vs) in zip(COLORS, values.items()):
        ax.hist(vs, bins=bins, range=(lo, hi if hi > lo else lo + 1), alpha=0.55, label=system, color=color)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("answers")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def loss_curve(run_dir: Path, path: Path) -> Path | None:
    """Training (and eval, when logged) loss from the training run's metrics.jsonl."""
    metrics_file = Path(run_dir) / "metrics.jsonl"
    if not metrics_file.exists():
        return None
    train, evals = [], []
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step") is None:
            continue
        if row.get("loss") is not None:
            train.append((row["step"], row["loss"]))
        if row.get("eval_loss") is not None:
            evals.append((row["step"], row["eval_loss"]))
    if not train and not evals:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    if train:
        ax.plot(*zip(*train), label="train loss", color=COLORS[0])
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", color=COLORS[1])
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"Training loss — {Path(run_dir).name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
