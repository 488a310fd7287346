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
from rich.text import Text

from .load import Loaded, load_valid
from .stats import DEFAULT_SEQ_LEN
from .validate import DEFAULT_MAX_CHARS

console = Console()
data_app = typer.Typer(help="Load, validate, clean, dedup, split and describe conversation datasets.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


SourceArg = typer.Argument(..., help="A .jsonl/.ndjson/.jsonlines(.gz)/.json/.parquet/.csv file, a directory of "
                           "them, a saved DatasetDict, or a Hub dataset id.")
MaxCharsOpt = typer.Option(DEFAULT_MAX_CHARS, "--max-chars", help="Reject records longer than this many characters.")
StrictOpt = typer.Option(False, "--strict", help="Exit 1 when any record is rejected.")
QuarantineOpt = typer.Option(None, help="Where rejected records go (JSONL with reasons; default "
                             "quarantine/<name>.quarantine.jsonl).")
SeqLenOpt = typer.Option(DEFAULT_SEQ_LEN, "--seq-len", help="Training sequence length to compare token counts with "
                         "(the training recipe's seq_len).")


def _say(*parts: object, style: str | None = None) -> None:
    """Print plain text: file names, roles, ids and messages come from the data and may hold ``[/]``; rich must
    never read them as markup (that raised MarkupError on a role named "[/]")."""
    console.print(Text.assemble(*[p if isinstance(p, tuple) else str(p) for p in parts], style=style or ""),
                  highlight=False, soft_wrap=True)


def _read(source: str, quarantine: Optional[Path], max_chars: int, *, clean: bool = False,
          split: Optional[str] = None) -> Loaded:
    """load_valid with a progress counter; reports skipped files and where the rejected records went."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not console.is_terminal:  # a pipe, a log or a test: no live progress bar (its refresh thread costs ~0.1 s)
        loaded = load_valid(source, split=split, max_chars=max_chars, clean=clean, quarantine=quarantine or True)
        _report_skipped(loaded)
        return loaded
    with Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(bar_width=None),
                  TextColumn("{task.completed:,} records"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task(f"reading {source}", total=None)
        loaded = load_valid(source, split=split, max_chars=max_chars, clean=clean,
                            quarantine=quarantine or True,
                            progress=lambda n: progress.update(task, completed=n))
    _report_skipped(loaded)
    return loaded


def _read_summarised(source: str, quarantine: Optional[Path], max_chars: int) -> Loaded:
    """The read prologue of dedup, split, stats, card and convert: ``_read``, then one line summing up what was
    rejected (validate lists the problems themselves, clean counts them in its table)."""
    loaded = _read(source, quarantine, max_chars)
    _report_rejects(loaded)
    return loaded


def _report_skipped(loaded: Loaded) -> None:
    for sk in loaded.skipped[:10]:
        _say(("skipped ", "yellow"), sk)
    if len(loaded.skipped) > 10:
        _say(f"… and {len(loaded.skipped) - 10} more skipped files")


def _report_rejects(loaded: Loaded, show: int | None = None) -> Counter:
    """Count rejections by code; print up to ``show`` problems, or (``show=None``) one summary line."""
    codes: Counter = Counter()
    shown = 0
    for row in loaded.quarantined:
        for reason in row["reasons"]:
            codes[reason["code"]] += 1
            if show is not None and shown < show:
                _say(("✗ ", "red"), f"{reason['file']}:{reason['line']}: ", (str(reason["field"]), "bold"),
                     f": {reason['message']}")
                shown += 1
    total = sum(codes.values())
    if show is not None and total > shown:
        _say(f"… and {total - shown} more problems (all are in the quarantine file)")
    if loaded.quarantined and show is None:
        _say((f"{loaded.rejected} of {loaded.records} records rejected", "yellow"), f" → {loaded.quarantine_path} "
             "(run `sagpt data validate` for details)")
    return codes


def _strict_exit(loaded: Loaded, strict: bool) -> None:
    if strict and loaded.quarantined:
        raise typer.Exit(1)


def _short(source: str) -> str:
    return Path(source).name if Path(source).exists() else source


def _kv_table(title: str, rows: list[tuple[str, object]]) -> Table:
    table = Table(title=Text(title), show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right", overflow="fold")  # paths are printed whole, never cut with "…"
    for k, v in rows:
        table.add_row(Text(k), Text(f"{v:,}" if isinstance(v, int) else str(v)))
    return table


def _accounting(loaded: Loaded) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [("records", loaded.records), ("kept", len(loaded.conversations)),
                                      ("quarantined", loaded.rejected)]
    if loaded.skipped:
        rows.append(("files skipped", len(loaded.skipped)))
    if loaded.quarantine_path:
        rows.append(("quarantine", str(loaded.quarantine_path)))
    return rows


@data_app.command()
def validate(
    source: str = SourceArg,
    quarantine: Optional[Path] = QuarantineOpt,
    out: Optional[Path] = typer.Option(None, help="Write the valid records here (.jsonl or .parquet)."),
    max_chars: int = MaxCharsOpt,
    show: int = typer.Option(20, help="Print at most this many problems."),
    strict: bool = StrictOpt,
    split: Optional[str] = typer.Option(None, help="Split to read (a Hub dataset or a JSON file of splits)."),
) -> None:
    """Report every problem with file, line and field; quarantine rejected records."""
    from .io import write_conversations

    loaded = _read(source, quarantine, max_chars, split=split)
    codes = _report_rejects(loaded, show=max(show, 0))
    if out:
        write_conversations(loaded.conversations, out)
    rows = [("records", loaded.records), ("valid", len(loaded.conversations)), ("rejected", loaded.rejected)]
    rows += [(f"  problem: {code}", c) for code, c in codes.most_common()]
    rows += [r for r in _accounting(loaded) if r[0] in ("files skipped", "quarantine")]
    if out:
        rows.append(("valid records written", str(out)))
    console.print(_kv_table(f"validate {_short(source)}", rows))
    _strict_exit(loaded, strict)


@data_app.command()
def clean(
    source: str = SourceArg,
    out: Path = typer.Option(..., help="Cleaned output (.jsonl or .parquet)."),
    quarantine: Optional[Path] = typer.Option(None, help="Where records that stay invalid go."),
    max_chars: int = MaxCharsOpt,
    fmt: str = typer.Option("sharegpt", "--format", help="JSONL flavour: sharegpt or messages."),
    strict: bool = StrictOpt,
) -> None:
    """NFC, control characters, whitespace, role aliases, merged same-role turns, dropped empty turns."""
    from .io import write_conversations

    fmt = _jsonl_flavour(fmt)
    loaded = _read(source, quarantine, max_chars, clean=True)
    write_conversations(loaded.conversations, out, fmt=fmt)
    rows = _accounting(loaded)
    rows[3:3] = [(f"  fixed: {k}", v) for k, v in sorted(loaded.changes.items())]
    rows.append(("output", str(out)))
    console.print(_kv_table(f"clean {_short(source)}", rows))
    _strict_exit(loaded, strict)


def _jsonl_flavour(fmt: str) -> str:
    if fmt not in ("sharegpt", "messages"):
        raise typer.BadParameter(f"unknown format {fmt!r}: use sharegpt or messages", param_hint="--format")
    return fmt


@data_app.command()
def dedup(
    source: str = SourceArg,
    out: Path = typer.Option(..., help="Deduplicated output (.jsonl or .parquet)."),
    threshold: float = typer.Option(0.8, min=0.05, max=1.0, help="MinHash Jaccard threshold for near-duplicates."),
    report: Optional[Path] = typer.Option(None, help="JSON report of removed clusters (default: OUT.dedup.json)."),
    quarantine: Optional[Path] = QuarantineOpt,
    max_chars: int = MaxCharsOpt,
    strict: bool = StrictOpt,
) -> None:
    """Remove exact and near-duplicate conversations (MinHash LSH), keeping the first of each cluster."""
    from ..utils import atomic_write_json
    from .dedup import dedup as run_dedup
    from .io import write_conversations

    loaded = _read_summarised(source, quarantine, max_chars)
    convs = loaded.conversations
    result = run_dedup(convs, threshold=threshold)
    write_conversations(result.kept, out)
    report = report or out.with_suffix(".dedup.json")
    atomic_write_json(report, {"input": len(convs), "kept": len(result.kept), "exact_removed": result.exact_removed,
                               "near_removed": result.near_removed, "threshold": threshold,
                               "quarantined": loaded.rejected, "clusters": result.clusters,
                               "removed": result.removed})
    console.print(_kv_table(f"dedup {_short(source)}", [
        ("conversations", len(convs)), ("kept", len(result.kept)), ("exact duplicates removed", result.exact_removed),
        ("near duplicates removed", result.near_removed), ("clusters", len(result.clusters)),
        *[r for r in _accounting(loaded) if r[0] != "records" and r[0] != "kept"],
        ("output", str(out)), ("report", str(report))]))
    _strict_exit(loaded, strict)


@data_app.command("split")
def split_cmd(
    source: str = SourceArg,
    out_dir: Path = typer.Option(..., help="Directory for train/test files and split_report.json."),
    test_size: float = typer.Option(0.15, help="Share of conversations in the test split (paper: 0.15)."),
    seed: int = typer.Option(42),
    prompt_threshold: float = typer.Option(0.6, min=0.05, max=1.0,
                                           help="Questions at least this similar stay on one side."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, parquet, or hf (a DatasetDict on disk)."),
    no_stratify: bool = typer.Option(False, "--no-stratify", help="Ignore topics when splitting."),
    quarantine: Optional[Path] = QuarantineOpt,
    max_chars: int = MaxCharsOpt,
    strict: bool = StrictOpt,
) -> None:
    """Deterministic seeded split, stratified by topic, with no near-duplicate pair across train and test."""
    from ..utils import atomic_write_json
    from .io import write_conversations, write_dataset_dict
    from .split import split as run_split

    if fmt not in ("jsonl", "parquet", "hf"):
        raise typer.BadParameter(f"unknown format {fmt!r}: use jsonl, parquet or hf", param_hint="--format")
    if not 0 < test_size < 1:
        raise typer.BadParameter(f"must be between 0 and 1 (exclusive), got {test_size}", param_hint="--test-size")
    loaded = _read_summarised(source, quarantine, max_chars)
    convs = loaded.conversations
    result = run_split(convs, test_size=test_size, seed=seed, prompt_threshold=prompt_threshold,
                       stratify=not no_stratify)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        write_dataset_dict({"train": result.train, "test": result.test}, out_dir / "dataset")
    else:
        write_conversations(result.train, out_dir / f"train.{fmt}")
        write_conversations(result.test, out_dir / f"test.{fmt}")
    report = {**result.report(), "seed": seed, "test_size": test_size, "source": source,
              "quarantined": loaded.rejected}
    atomic_write_json(out_dir / "split_report.json", report)
    console.print(_kv_table(f"split {_short(source)}", [
        ("conversations", len(convs)), ("train", len(result.train)), ("test", len(result.test)),
        ("leak groups (size > 1)", result.multi_member_groups),
        ("near-duplicate pairs across splits", result.cross_pairs),
        *[r for r in _accounting(loaded) if r[0] not in ("records", "kept")], ("output", str(out_dir))]))
    _strict_exit(loaded, strict)


@data_app.command()
def stats(
    source: str = SourceArg,
    tokenizer: Optional[str] = typer.Option(None, help="Count tokens with this model's tokenizer "
                                            "(default, tiny-random, a path or Hub id)."),
    seq_len: int = SeqLenOpt,
    out: Optional[Path] = typer.Option(None, help="Directory for stats.json and PNG histograms."),
    quarantine: Optional[Path] = QuarantineOpt,
    max_chars: int = MaxCharsOpt,
    strict: bool = StrictOpt,
) -> None:
    """Conversations, turns, words per role, token lengths vs seq_len, markdown rate, topics, distinct-n."""
    from ..utils import atomic_write_json
    from .stats import compute_stats, plot_stats, public

    loaded = _read_summarised(source, quarantine, max_chars)
    tok = _tokenizer(tokenizer) if tokenizer else None
    result = compute_stats(loaded.conversations, tok, seq_len)
    _print_stats(result, source)
    if out:
        atomic_write_json(out / "stats.json", public(result))
        for p in plot_stats(result, out):
            _say(f"plot: {p}")
        _say(f"stats: {out / 'stats.json'}")
    _strict_exit(loaded, strict)


def _tokenizer(source: str):
    from ..models import load_tokenizer

    return load_tokenizer(source)  # the one tokenizer path: chat-template fallback, same counts as training


def _print_stats(s: dict, title: str) -> None:
    table = Table(title=Text(f"stats {_short(title)}"))
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
        rows.append((f"longer than {s['seq_len']} tokens", f"{s['over_seq_len']} ({s['over_seq_len_share']:.1%})"))
    rows += [(f"topic: {t}", n) for t, n in list(s["topics"].items())[:12]]
    console.print(_kv_table("summary", rows))


@data_app.command()
def card(
    source: str = typer.Argument(..., help="A split directory (train.jsonl/test.jsonl) or one dataset file."),
    out: Path = typer.Option(..., help="Dataset folder (README.md is written into it; split files are copied)."),
    name: str = typer.Option("StudyAbroadGPT advising conversations", help="Pretty name."),
    license: str = typer.Option("mit"),
    tokenizer: Optional[str] = typer.Option(None, help="Add token statistics with this tokenizer."),
    seq_len: int = SeqLenOpt,
    max_chars: int = MaxCharsOpt,
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
    splits = {}
    for name_, p in split_files.items():
        loaded = _read_summarised(str(p), None, max_chars)
        splits[name_] = loaded.conversations
    all_convs = [c for convs in splits.values() for c in convs]
    stats_ = compute_stats(all_convs, _tokenizer(tokenizer) if tokenizer else None, seq_len)
    out.mkdir(parents=True, exist_ok=True)
    for split_name, convs in splits.items():
        write_conversations(convs, out / f"{split_name}.jsonl")
    the_card = build_card(stats_, {k: len(v) for k, v in splits.items()}, name=name, license=license,
                          fingerprint=fingerprint_paths(split_files.values()), kb_version=kb_version_of(all_convs))
    path = write_card(the_card, out)
    _say(f"dataset card: {path} ({len(all_convs)} conversations in {len(splits)} splits)")


def kb_version_of(convs: list) -> Optional[str]:
    """The knowledge-base version the conversations were generated from (their ``kb_version`` metadata), not
    the KB installed here: a card describes the data, and the data may be older than the installed KB.
    Several versions are listed comma-separated; None when the conversations do not say."""
    versions = sorted({str(v) for c in convs for k, v in c.metadata.items() if k in ("kb_version", "kb") and v})
    return ", ".join(versions) or None


@data_app.command()
def convert(
    source: str = SourceArg,
    out: Path = typer.Option(..., help=".jsonl, .parquet, or a directory for a DatasetDict (with --format hf)."),
    fmt: str = typer.Option("sharegpt", "--format", help="sharegpt, messages (JSONL flavours) or hf."),
    quarantine: Optional[Path] = QuarantineOpt,
    max_chars: int = MaxCharsOpt,
    strict: bool = StrictOpt,
) -> None:
    """Convert between ShareGPT, OpenAI messages, Alpaca, Parquet and DatasetDict."""
    from .io import write_conversations, write_dataset_dict

    if fmt != "hf":
        fmt = _jsonl_flavour(fmt)
    loaded = _read_summarised(source, quarantine, max_chars)
    if fmt == "hf":
        write_dataset_dict({"train": loaded.conversations}, out)
    else:
        write_conversations(loaded.conversations, out, fmt=fmt)
    _say(f"wrote {len(loaded.conversations)} conversations → {out}")
    _strict_exit(loaded, strict)
