"""`sagpt data …`: validate, clean, dedup, split, stats, card, convert.

Every command accounts for every record: records in = records kept + records quarantined (+ duplicates removed,
which are listed in their own report). Quarantine files are JSONL rows `{file, line, reasons, record}`.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
data_app = typer.Typer(help="Load, validate, clean, dedup, split and describe conversation datasets.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


SourceArg = typer.Argument(..., help="A .jsonl/.json/.parquet/.csv file, a directory of them, or a Hub dataset id.")


def _default_quarantine(source: str) -> Path:
    stem = Path(source).stem if Path(source).exists() else source.replace("/", "__")
    return Path("quarantine") / f"{stem}.quarantine.jsonl"


def _process(source: str, handler: Callable, split: Optional[str] = None) -> tuple[list, list[dict], int]:
    """Run ``handler(raw_record) -> (conversation|None, problems)`` over a source with a progress counter."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .io import iter_raw, quarantine_row

    good, bad, n = [], [], 0
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(bar_width=None),
                  TextColumn("{task.completed:,} records"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task(f"reading {source}", total=None)
        for rec in iter_raw(source, split=split):
            n += 1
            conv, problems = handler(rec)
            if conv is None:
                bad.append(quarantine_row(rec, problems))
            else:
                good.append(conv)
            if n % 500 == 0:
                progress.update(task, completed=n)
    return good, bad, n


def _write_quarantine(bad: list[dict], path: Optional[Path], source: str) -> Optional[Path]:
    from ..utils import atomic_write_jsonl

    if not bad:
        return None
    path = path or _default_quarantine(source)
    atomic_write_jsonl(path, bad)
    return path


def _load_valid(source: str, quarantine: Optional[Path], max_chars: int) -> list:
    from .validate import validate_record

    good, bad, n = _process(source, lambda r: validate_record(r, max_chars))
    q = _write_quarantine(bad, quarantine, source)
    if bad:
        console.print(f"[yellow]{len(bad)} of {n} records rejected[/] → {q} (run `sagpt data validate` for details)")
    return good


def _short(source: str) -> str:
    return Path(source).name if Path(source).exists() else source


def _kv_table(title: str, rows: list[tuple[str, object]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for k, v in rows:
        table.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    return table


@data_app.command()
def validate(
    source: str = SourceArg,
    quarantine: Optional[Path] = typer.Option(None, help="Where rejected records go (JSONL with reasons)."),
    out: Optional[Path] = typer.Option(None, help="Write the valid records here (.jsonl or .parquet)."),
    max_chars: int = typer.Option(100_000, help="Reject records longer than this many characters."),
    show: int = typer.Option(20, help="Print at most this many problems."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any record is rejected."),
    split: Optional[str] = typer.Option(None, help="Split to read for a Hub dataset id."),
) -> None:
    """Report every problem with file, line and field; quarantine rejected records."""
    from .io import write_conversations
    from .validate import validate_record

    good, bad, n = _process(source, lambda r: validate_record(r, max_chars), split)
    codes: Counter = Counter()
    shown = 0
    for row in bad:
        for reason in row["reasons"]:
            codes[reason["code"]] += 1
            if shown < show:
                where = f"{reason['file']}:{reason['line']}"
                console.print(f"[red]✗[/] {where}: [bold]{reason['field']}[/]: {reason['message']}", highlight=False,
                              soft_wrap=True)
                shown += 1
    total_problems = sum(codes.values())
    if total_problems > shown:
        console.print(f"… and {total_problems - shown} more problems (all are in the quarantine file)")
    q = _write_quarantine(bad, quarantine, source)
    if out:
        write_conversations(good, out)
    rows = [("records", n), ("valid", len(good)), ("rejected", len(bad))]
    rows += [(f"  problem: {code}", c) for code, c in codes.most_common()]
    if q:
        rows.append(("quarantine", str(q)))
    if out:
        rows.append(("valid records written", str(out)))
    console.print(_kv_table(f"validate {_short(source)}", rows))
    assert n == len(good) + len(bad)
    if strict and bad:
        raise typer.Exit(1)


@data_app.command()
def clean(
    source: str = SourceArg,
    out: Path = typer.Option(..., help="Cleaned output (.jsonl or .parquet)."),
    quarantine: Optional[Path] = typer.Option(None, help="Where records that stay invalid go."),
    max_chars: int = typer.Option(100_000),
    fmt: str = typer.Option("sharegpt", "--format", help="JSONL flavour: sharegpt or messages."),
) -> None:
    """NFC, control characters, whitespace, role aliases, merged same-role turns, dropped empty turns."""
    from .clean import clean_record
    from .io import write_conversations

    changes: Counter = Counter()
    good, bad, n = _process(source, lambda r: clean_record(r, changes, max_chars))
    write_conversations(good, out, fmt=fmt)
    q = _write_quarantine(bad, quarantine, source)
    rows = [("records", n), ("kept", len(good)), ("quarantined", len(bad))]
    rows += [(f"  fixed: {k}", v) for k, v in sorted(changes.items())]
    rows.append(("output", str(out)))
    if q:
        rows.append(("quarantine", str(q)))
    console.print(_kv_table(f"clean {_short(source)}", rows))


@data_app.command()
def dedup(
    source: str = SourceArg,
    out: Path = typer.Option(..., help="Deduplicated output (.jsonl or .parquet)."),
    threshold: float = typer.Option(0.8, min=0.05, max=1.0, help="MinHash Jaccard threshold for near-duplicates."),
    report: Optional[Path] = typer.Option(None, help="JSON report of removed clusters (default: OUT.dedup.json)."),
    quarantine: Optional[Path] = typer.Option(None),
    max_chars: int = typer.Option(100_000),
) -> None:
    """Remove exact and near-duplicate conversations (MinHash LSH), keeping the first of each cluster."""
    from ..utils import atomic_write_json
    from .dedup import dedup as run_dedup
    from .io import write_conversations

    convs = _load_valid(source, quarantine, max_chars)
    result = run_dedup(convs, threshold=threshold)
    write_conversations(result.kept, out)
    report = report or out.with_suffix(".dedup.json")
    atomic_write_json(report, {"input": len(convs), "kept": len(result.kept), "exact_removed": result.exact_removed,
                               "near_removed": result.near_removed, "threshold": threshold,
                               "clusters": result.clusters, "removed": result.removed})
    console.print(_kv_table(f"dedup {_short(source)}", [
        ("conversations", len(convs)), ("kept", len(result.kept)), ("exact duplicates removed", result.exact_removed),
        ("near duplicates removed", result.near_removed), ("clusters", len(result.clusters)),
        ("output", str(out)), ("report", str(report))]))


@data_app.command("split")
def split_cmd(
    source: str = SourceArg,
    out_dir: Path = typer.Option(..., help="Directory for train/test files and split_report.json."),
    test_size: float = typer.Option(0.15, help="Share of conversations in the test split (paper: 0.15)."),
    seed: int = typer.Option(42),
    prompt_threshold: float = typer.Option(0.6, help="Questions at least this similar stay on one side."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, parquet, or hf (a DatasetDict on disk)."),
    no_stratify: bool = typer.Option(False, "--no-stratify", help="Ignore topics when splitting."),
    quarantine: Optional[Path] = typer.Option(None),
    max_chars: int = typer.Option(100_000),
) -> None:
    """Deterministic seeded split, stratified by topic, with no near-duplicate pair across train and test."""
    from ..utils import atomic_write_json
    from .io import write_conversations, write_dataset_dict
    from .split import split as run_split

    convs = _load_valid(source, quarantine, max_chars)
    result = run_split(convs, test_size=test_size, seed=seed, prompt_threshold=prompt_threshold,
                       stratify=not no_stratify)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        write_dataset_dict({"train": result.train, "test": result.test}, out_dir / "dataset")
    elif fmt in ("jsonl", "parquet"):
        write_conversations(result.train, out_dir / f"train.{fmt}")
        write_conversations(result.test, out_dir / f"test.{fmt}")
    else:
        raise typer.BadParameter(f"unknown format {fmt!r}: use jsonl, parquet or hf", param_hint="--format")
    report = {**result.report(), "seed": seed, "test_size": test_size, "source": source}
    atomic_write_json(out_dir / "split_report.json", report)
    console.print(_kv_table(f"split {_short(source)}", [
        ("conversations", len(convs)), ("train", len(result.train)), ("test", len(result.test)),
        ("leak groups (size > 1)", result.multi_member_groups),
        ("near-duplicate pairs across splits", result.cross_pairs), ("output", str(out_dir))]))


@data_app.command()
def stats(
    source: str = SourceArg,
    tokenizer: Optional[str] = typer.Option(None, help="Count tokens with this model's tokenizer "
                                            "(default, tiny-random, a path or Hub id)."),
    max_seq_len: int = typer.Option(2048),
    out: Optional[Path] = typer.Option(None, help="Directory for stats.json and PNG histograms."),
    quarantine: Optional[Path] = typer.Option(None),
    max_chars: int = typer.Option(100_000),
) -> None:
    """Conversations, turns, words per role, token lengths vs max length, markdown rate, topics, distinct-n."""
    from ..utils import atomic_write_json
    from .stats import compute_stats, plot_stats, public

    convs = _load_valid(source, quarantine, max_chars)
    tok = _tokenizer(tokenizer) if tokenizer else None
    result = compute_stats(convs, tok, max_seq_len)
    _print_stats(result, source)
    if out:
        atomic_write_json(out / "stats.json", public(result))
        for p in plot_stats(result, out):
            console.print(f"plot: {p}")
        console.print(f"stats: {out / 'stats.json'}")


def _tokenizer(source: str):
    from transformers import AutoTokenizer

    from ..models import resolve

    return AutoTokenizer.from_pretrained(resolve(source))


def _print_stats(s: dict, title: str) -> None:
    table = Table(title=f"stats {_short(title)}")
    for col in ["", "mean", "median", "p95", "max"]:
        table.add_column(col, justify="right" if col else "left")
    table.add_row("turns / conversation", *[str(s["turns_per_conversation"][k]) for k in ["mean", "median", "p95", "max"]])
    for role, w in s["words"].items():
        table.add_row(f"words / {role} turn", *[str(w[k]) for k in ["mean", "median", "p95", "max"]])
    if "tokens" in s:
        table.add_row("tokens / conversation", *[str(s["tokens"][k]) for k in ["mean", "median", "p95", "max"]])
    console.print(table)
    rows = [("conversations", s["conversations"]), ("markdown rate", f"{s['markdown_rate']:.1%}"),
            ("distinct-1 / distinct-2", f"{s['distinct_1']} / {s['distinct_2']}"),
            ("with KB provenance", s["with_provenance"])]
    if "tokens" in s:
        rows.append((f"longer than {s['max_seq_len']} tokens", f"{s['over_max_seq_len']} "
                     f"({s['over_max_seq_len_share']:.1%})"))
    rows += [(f"topic: {t}", n) for t, n in list(s["topics"].items())[:12]]
    console.print(_kv_table("summary", rows))


@data_app.command()
def card(
    source: str = typer.Argument(..., help="A split directory (train.jsonl/test.jsonl) or one dataset file."),
    out: Path = typer.Option(..., help="Dataset folder (README.md is written into it; split files are copied)."),
    name: str = typer.Option("StudyAbroadGPT advising conversations", help="Pretty name."),
    license: str = typer.Option("mit"),
    tokenizer: Optional[str] = typer.Option(None, help="Add token statistics with this tokenizer."),
    max_seq_len: int = typer.Option(2048),
) -> None:
    """Write a Hugging Face dataset card with valid YAML metadata, filled from the statistics."""
    from ..utils import fingerprint_paths
    from .card import build_card, write_card
    from .io import write_conversations
    from .stats import compute_stats

    src = Path(source)
    split_files = {p.stem: p for p in sorted(src.glob("*.jsonl")) if p.stem in ("train", "test", "validation")} \
        if src.is_dir() else {}
    if not split_files:
        split_files = {"train": src}
    splits = {name_: _load_valid(str(p), None, 100_000) for name_, p in split_files.items()}
    all_convs = [c for convs in splits.values() for c in convs]
    stats_ = compute_stats(all_convs, _tokenizer(tokenizer) if tokenizer else None, max_seq_len)
    out.mkdir(parents=True, exist_ok=True)
    for split_name, convs in splits.items():
        write_conversations(convs, out / f"{split_name}.jsonl")
    kb_version = _kb_version()
    the_card = build_card(stats_, {k: len(v) for k, v in splits.items()}, name=name, license=license,
                          fingerprint=fingerprint_paths(split_files.values()), kb_version=kb_version)
    path = write_card(the_card, out)
    console.print(f"dataset card: {path} ({len(all_convs)} conversations in {len(splits)} splits)")


def _kb_version() -> Optional[str]:
    try:
        from ..kb.store import load_kb

        return load_kb().version
    except Exception:  # the KB is optional for a dataset card
        return None


@data_app.command()
def convert(
    source: str = SourceArg,
    out: Path = typer.Option(..., help=".jsonl, .parquet, or a directory for a DatasetDict (with --format hf)."),
    fmt: str = typer.Option("sharegpt", "--format", help="sharegpt, messages (JSONL flavours) or hf."),
    quarantine: Optional[Path] = typer.Option(None),
    max_chars: int = typer.Option(100_000),
) -> None:
    """Convert between ShareGPT, OpenAI messages, Alpaca, Parquet and DatasetDict."""
    from .io import write_conversations, write_dataset_dict

    convs = _load_valid(source, quarantine, max_chars)
    if fmt == "hf":
        write_dataset_dict({"train": convs}, out)
    else:
        write_conversations(convs, out, fmt=fmt)
    console.print(f"wrote {len(convs)} conversations → {out}")
