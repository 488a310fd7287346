"""``sagpt train``: fine-tune with a recipe, resume a handoff bundle, plan memory for a GPU, or show labels.

Heavy imports (torch, transformers) happen inside the command so ``sagpt --help`` stays fast.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("train", help=__doc__.split("\n")[0].split(": ", 1)[1])(train)


def train(
    overrides: Optional[List[str]] = typer.Argument(None, help="Recipe overrides, e.g. lr=1e-4 lora.r=8"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Recipe YAML (configs/*.yaml)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Handoff bundle, checkpoint or run dir."),
    adapter_only: bool = typer.Option(False, "--adapter-only", help="On resume, carry only the adapter "
                                      "(fresh optimizer moments), as the paper did between machines."),
    allow_data_change: bool = typer.Option(False, "--allow-data-change",
                                           help="Resume even though the dataset fingerprint changed."),
    time_budget: Optional[str] = typer.Option(None, "--time-budget", help="Stop and hand off before this "
                                              "wall-clock time, e.g. 8h30m, 90m, 45s."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in a run dir that has checkpoints."),
    plan: bool = typer.Option(False, "--plan", help="Estimate peak memory and time per epoch; do not train."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU for --plan: t4, p100, a10g, a100-40, a100-80, h100."),
    show_labels: Optional[int] = typer.Option(None, "--show-labels", help="Print N encoded samples with trained "
                                              "tokens highlighted and masked ones dimmed; do not train."),
) -> None:
    from rich.console import Console

    from ..config import ConfigError
    from .config import load_train_config

    console = Console(stderr=True)
    if config is None and resume is None:
        raise ConfigError("pass --config configs/<recipe>.yaml (or --resume BUNDLE to continue a run)")
    if config is not None:
        cfg = load_train_config(config, overrides or [])
    else:
        from .checkpoint import find_bundle

        cfg = load_train_config(find_bundle(resume) / "config.yaml", overrides or [])

    if plan:
        from .plan import plan_report

        Console().print(plan_report(cfg, gpu or "t4"), markup=False, highlight=False)
        return
    if show_labels is not None:
        _show_labels(cfg, show_labels)
        return
    from .trainer import run

    run(cfg, resume=resume, adapter_only=adapter_only, allow_data_change=allow_data_change,
        time_budget=time_budget, overwrite=overwrite, command=["sagpt", *sys.argv[1:]], console=console)


def _show_labels(cfg, n: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel

    from ..data.load import load_valid
    from ..models import load_tokenizer
    from .formatting import encode_all, render_labels

    out = Console()
    tok = load_tokenizer(cfg.model)
    convs = load_valid(cfg.phases[0].dataset if cfg.phases and cfg.phases[0].dataset else cfg.dataset).conversations
    examples, stats = encode_all(tok, convs[:n], cfg.seq_len)
    for ex in examples:
        title = (f"{escape(ex.conv_id)}: {len(ex)} tokens, {ex.n_trained} trained"
                 f"{', truncated' if ex.truncated else ''}{', system folded into user' if ex.system_folded else ''}")
        out.print(Panel(render_labels(tok, ex), title=title, subtitle="[on green]trained[/] / [dim]masked[/]"))

