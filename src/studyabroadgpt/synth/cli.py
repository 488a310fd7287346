"""`sagpt synth`: grounded advising conversations from the knowledge base (template or OpenAI-compatible writer)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def register(app: typer.Typer) -> None:
    app.command("synth", help="Generate grounded multi-turn advising conversations from the knowledge base.")(
        synth_cmd)


def synth_cmd(
    n: int = typer.Option(2500, "--n", min=1, help="Conversations to plan."),
    seed: int = typer.Option(0, help="Same seed, same data (template backend)."),
    out: Path = typer.Option(..., "--out", help="Output .jsonl (ShareGPT with provenance) or .parquet."),
    backend: str = typer.Option("template", help="template (offline) or openai (any OpenAI-compatible endpoint)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="e.g. http://localhost:8000/v1 (openai)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name the endpoint serves (openai)."),
    temperature: float = typer.Option(0.7, help="Sampling temperature (openai)."),
    retrieve: int = typer.Option(2, help="Facts retrieved for each question and added to the prompt (openai)."),
    quarantine: Optional[Path] = typer.Option(None, help="Where failed conversations go "
                                                         "(default: <out>.quarantine.jsonl)."),
    kb: Optional[Path] = typer.Option(None, "--kb", help="Knowledge base (default: the shipped one)."),
    fmt: str = typer.Option("sharegpt", "--format", help="sharegpt or messages (JSONL flavours)."),
    grounded: bool = typer.Option(False, "--grounded", help="Retrieval-augmented fine-tuning data: every "
                                  "conversation opens with the server's numbered-facts system prompt (relevant "
                                  "plus distractor facts); answers cite it; some questions are not covered by "
                                  "the facts and the answer says so (template backend)."),
) -> None:
    """Every answer is audited against its facts; failures are quarantined with reasons, never kept.

    The OpenAI key, if the endpoint needs one, is read from OPENAI_API_KEY.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..data.dedup import dedup
    from ..data.io import write_conversations
    from ..kb.store import load_kb
    from ..utils import atomic_write_json, atomic_write_jsonl
    from .generate import Grounding, synthesize
    from .writers import check_backend

    opts = ({"base_url": base_url, "model": model, "temperature": temperature, "retrieve": retrieve}
            if backend == "openai" else {})
    check_backend(backend, opts)  # before the KB load: a typo fails at once
    knowledge = load_kb(kb)
    with Progress(TextColumn("[bold]synthesising"), BarColumn(bar_width=None), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("synth", total=n)
        result = synthesize(knowledge, n, seed=seed, backend=backend, grounding=Grounding() if grounded else None,
                            on_conversation=lambda i: progress.update(task, completed=i), **opts)
    write_conversations(result.conversations, out, fmt=fmt)
    q_path = quarantine or out.with_name(out.stem + ".quarantine.jsonl")
    if result.quarantine:
        atomic_write_jsonl(q_path, result.quarantine)
    near = dedup(result.conversations, threshold=0.8) if result.conversations else None
    summary = {**result.summary(), "backend": backend, "seed": seed, "kb_version": knowledge.version,
               "near_duplicates_removed_at_0.8": near.near_removed if near else 0,
               "exact_duplicates": near.exact_removed if near else 0,
               "near_duplicate_rate": (near.near_removed + near.exact_removed) / len(result.conversations)
               if near else 0.0}
    atomic_write_json(out.with_name(out.stem + ".synth.json"), summary)
    table = Table(title=f"synth → {out}", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("conversations kept", str(summary["kept"]))
    table.add_row("quarantined (failed audit)", f"{summary['quarantined']}" +
                  (f" → {q_path}" if result.quarantine else ""))
    table.add_row("answers audited", str(summary["audited_answers"]))
    table.add_row("near-duplicate rate (MinHash Jaccard ≥ 0.8)", f"{summary['near_duplicate_rate']:.2%}")
    console.print(table)
