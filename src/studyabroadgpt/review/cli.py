"""``sagpt review``: export reviewed answers as phase-2 training data, KB proposals as a patch, statistics,
deletion and retention. The review itself happens in the browser at ``/review`` of ``sagpt serve --log-db``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
review_app = typer.Typer(help="Adviser review of logged answers: export, KB proposals, stats, deletion.",
                         no_args_is_help=True)

DEFAULT_DB = "runs/serve/conversations.db"
DB_HELP = f"Log database: a SQLite file, sqlite:///file.db or postgresql://user@host/db (default {DEFAULT_DB})."


def resolve_db(db: str | None) -> str:
    """``sqlite`` (or nothing) means the default SQLite file under runs/serve/."""
    return DEFAULT_DB if db in (None, "", "sqlite", "default") else db


def _store(db: str | None, must_exist: bool = True):
    from .db import normalise_url
    from .store import LogStore

    url = resolve_db(db)
    if must_exist and normalise_url(url).startswith("sqlite:///"):
        path = Path(normalise_url(url)[len("sqlite:///"):])
        if not path.exists():
            from ..config import ConfigError

            raise ConfigError(f"--db {url}: no such log database (start `sagpt serve --log-db {url}` first)")
    return LogStore(url)


def _kb(kb: Optional[str]):
    from ..kb.store import load_kb

    return load_kb(kb)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")


@review_app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", help="Phase-2 training file (.jsonl, ShareGPT)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    kb: Optional[str] = typer.Option(None, help="Knowledge base for the grounding prompt (default: shipped)."),
    grounded: bool = typer.Option(True, "--grounded/--plain",
                                  help="Put the numbered facts the answer cited in a system turn (grounded "
                                       "fine-tuning) or export the bare question and answer."),
) -> None:
    """Approved and corrected answers → a curated ShareGPT training set with reviewer, date and KB version."""
    from .export import export_phase2

    path, n = export_phase2(_store(db), out, _kb(kb) if grounded else None, grounded)
    console.print(f"wrote {n} reviewed conversation(s) to {escape(str(path))}  "
                  f"(train: sagpt train --config configs/smollm2-135m-cpu.yaml dataset={escape(str(path))})")


@review_app.command("kb-proposals")
def proposals_cmd(
    out: Path = typer.Option(..., "--out", help="YAML patch in the knowledge-base format."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    kb: Optional[str] = typer.Option(None, help="Knowledge base the flags refer to (default: shipped)."),
) -> None:
    """Facts advisers marked wrong or outdated, and new facts they proposed, as a patch `kb validate` checks."""
    from .proposals import write_proposals

    path, n, problems = write_proposals(_store(db), _kb(kb), out)
    console.print(f"wrote {n} proposed change(s) to {escape(str(path))}; check with: sagpt kb validate {escape(str(path))}")
    if problems:
        for p in problems:
            console.print(f"[red]problem[/]: {escape(str(p))}")
        raise typer.Exit(1)


@review_app.command("stats")
def stats_cmd(
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for stats.json and stats.png."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Answers reviewed, corrected share over time, top failing topics (table + JSON + plot)."""
    from ..utils import atomic_write_json
    from .stats import plot_stats, review_stats

    stats = review_stats(_store(db))
    if out is not None:
        atomic_write_json(out / "stats.json", stats)
        plot_stats(stats, out / "stats.png")
    if as_json:
        console.print_json(json.dumps(stats))
        return
    t = Table(title="Adviser review")
    t.add_column("measure")
    t.add_column("value", justify="right")
    share = stats["corrected_share"]
    lo, hi = stats["corrected_share_ci95"]
    for k, v in [("answers logged", stats["answers_logged"]), ("answers reviewed", stats["answers_reviewed"]),
                 ("approved", stats["approved"]), ("corrected or fact flagged", stats["corrected"]),
                 ("corrected share", "–" if share is None else f"{share:.0%} (95% CI {lo:.0%}–{hi:.0%})"),
                 ("thumbs down / up", f"{stats['thumbs_down']} / {stats['thumbs_up']}"),
                 ("pending", stats["pending"])]:
        t.add_row(k, str(v))
    console.print(t)
    if stats["by_day"]:
        d = Table(title="Corrected share by day")
        for col in ("day", "reviewed", "corrected", "share"):
            d.add_column(col, justify="right")
        for row in stats["by_day"]:
            d.add_row(row["day"], str(row["reviewed"]), str(row["corrected"]), f"{row['corrected_share']:.0%}")
        console.print(d)
    if stats["top_failing_topics"]:
        console.print("top failing topics: " + ", ".join(
            f"{escape(x['topic'])} ({x['answers']})" for x in stats["top_failing_topics"]))
    if out is not None:
        console.print(f"wrote {escape(str(out / 'stats.json'))} and {escape(str(out / 'stats.png'))}")


@review_app.command("delete")
def delete_cmd(
    conversation: str = typer.Option(..., "--conversation", help="Conversation id (X-Conversation-ID)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Delete every logged turn of one conversation, with its reviews and feedback (a student's request)."""
    n = _store(db).delete_conversation(conversation)
    console.print(f"deleted {n} turn(s) of conversation {escape(conversation)}")


@review_app.command("purge")
def purge_cmd(
    older_than_days: int = typer.Option(..., "--older-than-days", min=1),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Apply a retention period now (the server also does it with --log-retention-days)."""
    n = _store(db).purge(older_than_days)
    console.print(f"deleted {n} turn(s) older than {older_than_days} day(s)")


@review_app.command("migrate")
def migrate_cmd(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Create or upgrade the log database schema (the server does this at start-up too)."""
    store = _store(db, must_exist=False)
    console.print(f"{escape(store.engine.url.render_as_string(hide_password=True))}: schema at head, "
                  f"{store.count()} turn(s) logged")
