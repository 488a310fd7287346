"""`sagpt kb validate | stale | search` and the top-level `sagpt audit FILE`.

Imports of the encoder and friends happen inside the commands so that `sagpt --help` stays instant.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
kb_app = typer.Typer(help="Check, date-review and search the sourced knowledge base.", no_args_is_help=True)

KBOption = typer.Option(None, "--kb", help="Knowledge-base directory or file (default: the shipped one).")


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")
    app.command("audit", help="Audit every answer in a dataset or model-output file against the knowledge base.")(
        audit_cmd)


def _parse_date(value: Optional[str], name: str) -> Optional[dt.date]:
    from .schema import KBError

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise KBError(f"{name}: {value!r} is not an ISO date (YYYY-MM-DD)") from exc


def _t(value: object) -> Text:
    """Cell text exactly as written: ids, messages and file names may contain ``[/]``, which rich would read as
    markup (a MarkupError in the middle of a report)."""
    return Text(str(value))


@kb_app.command()
def validate(
    path: Optional[Path] = typer.Argument(None, help="Directory or YAML/JSONL file (default: the shipped KB)."),
    today: Optional[str] = typer.Option(None, help="Date to check as_of against (default: today)."),
    as_json: bool = typer.Option(False, "--json", help="Print the issues as JSON."),
) -> None:
    """Schema, https source URLs, dates, duplicate ids, conflicting values, empty files and verification records."""
    from collections import Counter

    from .store import DEFAULT_KB_DIR, check_kb

    entries, issues = check_kb(path, today=_parse_date(today, "--today"))
    errors = [i for i in issues if i.severity == "error"]
    facts = [e for e in entries if e.kind == "fact"]
    guidance = [e for e in entries if e.kind == "guidance"]
    if as_json:
        console.print_json(json.dumps({"facts": len(facts), "guidance": len(guidance), "entries": len(entries),
                                       "issues": [i.to_dict() for i in issues]}))
    else:
        dests, topics = Counter(f.destination for f in facts), Counter(f.topic for f in facts)
        g_topics = Counter(g.topic for g in guidance)
        verified = sum(e.is_verified for e in entries)
        console.print(Text.assemble((str(path or DEFAULT_KB_DIR.parent), "bold"),
                                    f": {len(facts)} valid facts, {len(dests)} destinations "
                                    f"({', '.join(f'{d} {n}' for d, n in sorted(dests.items()))}), {len(topics)} "
                                    f"topics; {len(guidance)} guidance entries over {len(g_topics)} topics; "
                                    f"{verified} of {len(entries)} verified against their source"))
        if issues:
            table = Table(title=f"{len(errors)} errors, {len(issues) - len(errors)} warnings", show_lines=False)
            for col in ("where", "entry", "field", "severity", "problem"):
                table.add_column(col, overflow="fold")
            for i in issues:
                where = i.file + (f":{i.line}" if i.line else "")
                table.add_row(_t(where), _t(i.fact_id or "-"), _t(i.field), _t(i.severity), _t(i.message))
            console.print(table)
    if errors:
        raise typer.Exit(1)
    if not as_json:
        console.print("[green]ok[/]: no errors found" + (f" ({len(issues)} warnings)" if issues else ""))


@kb_app.command()
def stale(
    today: Optional[str] = typer.Option(None, help="Review date (default: today), YYYY-MM-DD."),
    kb: Optional[Path] = KBOption,
    fail: bool = typer.Option(False, "--fail", help="Exit 1 when any entry is stale (for CI)."),
) -> None:
    """Entries past their review_after date: re-check them against their source before trusting them."""
    from .store import load_kb

    day = _parse_date(today, "--today") or dt.date.today()
    knowledge = load_kb(kb)
    old = knowledge.stale(day)
    if not old:
        console.print(f"[green]ok[/]: none of {len(knowledge)} entries is due for review on {day}")
        return
    table = Table(title=f"{len(old)} of {len(knowledge)} entries due for review on {day}")
    for col in ("id", "kind", "dest", "topic", "review_after", "as_of", "verified", "source"):
        table.add_column(col, overflow="fold")
    for e in old:
        table.add_row(_t(e.id), e.kind, _t(e.destination), _t(e.topic), str(e.review_after), str(e.as_of),
                      (f"{e.verification.status} {e.verification.checked_on}" if e.verification else "never"), _t(e.source_url))
    console.print(table)
    if fail:
        raise typer.Exit(1)


@kb_app.command()
def coverage(
    kb: Optional[Path] = KBOption,
    question: Optional[str] = typer.Option(None, "--question", "-q",
                                           help="Show which places and institutions this question names that the "
                                                "KB covers and does not cover."),
    as_json: bool = typer.Option(False, "--json", help="Print the coverage map as JSON."),
) -> None:
    """The coverage map: entries per destination and topic, institutions, and destinations with no entries."""
    from .coverage import coverage_table, detect_scope
    from .schema import DESTINATIONS
    from .store import load_kb

    knowledge = load_kb(kb)
    if question is not None:
        scope = detect_scope(question, knowledge)
        if as_json:
            console.print_json(json.dumps(scope.to_dict()))
            return
        covered = ", ".join(f"{DESTINATIONS[c]} ({c})" for c in scope.covered) or "none"
        console.print(Text(f"covered destinations named: {covered}"))
        console.print(Text(f"covered institutions named: {', '.join(scope.institutions) or 'none'}"))
        if scope.origins:
            console.print(Text(f"named as the student's origin: {', '.join(scope.origins)}"))
        for name, where in zip(scope.uncovered, scope.where_to_check()):
            console.print(Text(f"no official information in the knowledge base on {name}: check {where}",
                               style="yellow"))
        return
    table_data = coverage_table(knowledge)
    if as_json:
        console.print_json(json.dumps(table_data))
        return
    table = Table(title=f"knowledge-base coverage ({len(knowledge.facts)} facts, {len(knowledge.guidance)} guidance)")
    for col in ("dest", "country", "facts", "guidance", "verified", "topics"):
        table.add_column(col, overflow="fold")
    for code, row in table_data["destinations"].items():
        table.add_row(_t(code), _t(row["country"]), str(row["facts"]), str(row["guidance"]),
                      f"{row['verified']}/{row['entries']}",
                      _t(", ".join(f"{t} {n}" for t, n in row["topics"].items())))
    console.print(table)
    console.print(Text(f"institutions with facts: {', '.join(table_data['institutions']) or 'none'}"))
    console.print(Text("destinations with no entries (answers say so): "
                       + ", ".join(f"{DESTINATIONS[c]} ({c})" for c in table_data["not_covered"])))


@kb_app.command()
def calibrate(
    queries: Path = typer.Option(Path("tests/kb/queries.yaml"), "--queries",
                                 help="Labelled queries: YAML list of {query, relevant: [ids]} (relevant [] = none)."),
    kb: Optional[Path] = KBOption,
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the calibration (default: the shipped "
                                                           "kb/calibration.json)."),
    folds: int = typer.Option(5, min=2, help="Cross-validation folds for the held-out figures."),
) -> None:
    """Fit the relevance model and threshold on labelled queries; print held-out recall and false retrieval."""
    import datetime as _dt

    from .relevance import CALIBRATION_PATH, candidate_rows, cross_validate, fit, load_queries, metrics_at
    from .schema import KBError
    from .search import Retriever
    from .store import load_kb

    try:
        labelled = load_queries(queries)
    except (OSError, ValueError) as exc:
        raise KBError(f"--queries: {exc}") from exc
    knowledge = load_kb(kb)
    unknown = sorted({i for q in labelled for i in q.relevant if i not in knowledge.by_id})
    if unknown:
        raise KBError(f"{queries}: names entries the knowledge base lacks: {', '.join(unknown[:8])}")
    retriever = Retriever.from_kb(knowledge)
    X, y, qi, ranks = candidate_rows(retriever, labelled)
    cv = cross_validate(X, y, qi, ranks, labelled, folds=folds)
    cal = fit(X, y, qi, ranks, labelled)
    # the threshold that held up on unseen queries (median over folds), not the one tuned to the training rows
    cal.threshold = float(np.median(cv["fold_thresholds"]))
    train = metrics_at(np.array([cal.relevance(x) for x in X]), y, qi, ranks, labelled, cal.threshold)
    cal.meta = {"kb_version": knowledge.version, "queries": len(labelled), "fitted_on": str(_dt.date.today()),
                "train": {k: v for k, v in train.items()},
                "cross_validated": {k: v for k, v in cv.items() if k != "by_kind"}}
    path = cal.save(out or CALIBRATION_PATH)
    table = Table(title=f"relevance calibration on {len(labelled)} labelled queries → {path}")
    for col in ("", "recall@5", "kept recall@5", "false retrieval (uncovered)", "threshold"):
        table.add_column(col)
    for name, m in (("training set", train), (f"{folds}-fold held out", cv)):
        table.add_row(name, f"{m['recall_at_5']:.3f}", f"{m['kept_recall_at_5']:.3f}",
                      f"{m['false_retrieval_rate']:.3f} of {m['uncovered_queries']}", f"{m['threshold']:.2f}")
    for kind, m in cv["by_kind"].items():
        table.add_row(f"  held out: {kind} ({m['queries']})", f"{m['recall_at_5']:.3f}",
                      f"{m['kept_recall_at_5']:.3f}", f"{m['false_retrieval_rate']:.3f}", "")
    console.print(table)
    for kind, h in cv["hits"].items():  # held out: the fused order vs the order search serves (by relevance)
        console.print(f"held out, {kind} ({h['queries']}): hit@1 {h['fused_hit_at_1']:.3f} → {h['hit_at_1']:.3f}, "
                      f"hit@3 {h['fused_hit_at_3']:.3f} → {h['hit_at_3']:.3f} (fused order → served order)")


@kb_app.command()
def review(
    out: Path = typer.Option(Path("runs/kb-review"), "--out", help="Directory for review.md, review.json and "
                                                                  "review.png."),
    today: Optional[str] = typer.Option(None, help="Review date (default: today), YYYY-MM-DD."),
    kb: Optional[Path] = KBOption,
    show: int = typer.Option(15, help="How many queue entries to print."),
) -> None:
    """Coverage-and-verification review: what an adviser must check first (mismatches, stale, unverified)."""
    from .review import review_summary, write_review
    from .store import load_kb

    day = _parse_date(today, "--today") or dt.date.today()
    knowledge = load_kb(kb)
    paths = write_review(knowledge, out, day)
    s = review_summary(knowledge, day)
    console.print(Text(f"{s['entries']} entries ({s['facts']} facts, {s['guidance']} guidance), "
                       f"{s['destinations']} destinations, {s['topics']} topics; {s['verified']} "
                       f"({s['verified_share']:.0%}) verified against their source text; {s['stale']} stale"))
    table = Table(title=f"review first ({len(s['queue'])} entries need a look)")
    for col in ("#", "reason", "id", "dest", "topic", "review_after"):
        table.add_column(col, overflow="fold")
    for n, it in enumerate(s["queue"][:show], start=1):
        table.add_row(str(n), it["reason"], _t(it["id"]), _t(it["destination"]), _t(it["topic"]),
                      it["review_after"])
    console.print(table)
    console.print(Text(f"report: {paths['markdown']} (+ {paths['json'].name}, {paths['plot'].name})"))


@kb_app.command()
def search(
    query: str = typer.Argument(..., help="A student's question."),
    k: int = typer.Option(5, "-k", "--k", min=1, help="How many facts."),
    destination: Optional[str] = typer.Option(None, "--destination", "-d", help="ISO code or country name."),
    kb: Optional[Path] = KBOption,
    index_dir: Optional[Path] = typer.Option(None, help="Where the embedding index lives (default: cache)."),
) -> None:
    """Hybrid BM25 + MiniLM search with reciprocal rank fusion."""
    from .geo import normalise_destination
    from .schema import KBError
    from .search import Retriever
    from .store import load_kb

    try:
        dest = normalise_destination(destination)
    except ValueError as exc:
        raise KBError(f"--destination: {exc}") from exc
    retriever = Retriever.from_kb(load_kb(kb), index_dir=index_dir) if (kb or index_dir) else Retriever.default()
    hits = retriever.search(query, k=k, destination=dest)
    table = Table(title=Text(repr(query) + (f" in {dest}" if dest else "")), show_lines=True)
    columns = (("#", {"justify": "right"}), ("relevance", {"justify": "right"}), ("id", {"overflow": "fold"}),
               ("kind", {}), ("dest", {}), ("topic", {}), ("statement", {"overflow": "fold", "ratio": 3}),
               ("source", {"overflow": "fold"}))
    for col, kw in columns:
        table.add_column(col, **kw)
    for i, h in enumerate(hits, start=1):
        f = h.fact
        rel = f"{h.relevance:.2f}" + ("" if h.relevance >= retriever.threshold else " (below)")
        table.add_row(str(i), rel, _t(f.id), f.kind, _t(f.destination), _t(f.topic), _t(f.statement),
                      _t(f"{f.source_title} (as of {f.as_of})"))
    console.print(table)
    console.print(Text(f"relevance is calibrated; hits below the threshold {retriever.threshold:.2f} are not used "
                       "by the answer path"))


def audit_cmd(
    file: str = typer.Argument(..., help="Dataset (ShareGPT/messages/Alpaca) or model outputs (id,prompt,response)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Per-answer report (.jsonl); a summary .json and a .png "
                                                           "plot are written beside it."),
    kb: Optional[Path] = KBOption,
    dense: bool = typer.Option(False, "--dense/--lexical",
                               help="Rank facts per claim with hybrid BM25+embedding retrieval (loads the encoder, "
                                    "~100x slower) instead of BM25 alone."),
    show: int = typer.Option(5, help="How many flagged answers to print."),
) -> None:
    """Share of answers with contradicted or unsupported claims (Wilson 95% CI), caveats and scaffolding."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..utils import atomic_write_json, atomic_write_jsonl
    from .audit import Auditor
    from .report import audit_file, plot_audit
    from .store import load_kb

    if dense:
        from .search import Retriever

        retriever = Retriever.from_kb(load_kb(kb)) if kb else Retriever.default()
        auditor = Auditor(retriever.kb, retriever, dense=True)
    else:
        auditor = Auditor(load_kb(kb))
    with Progress(SpinnerColumn(), TextColumn("[bold]auditing {task.description}"), BarColumn(bar_width=None),
                  TextColumn("{task.completed} answers"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task(Path(file).name, total=None)
        result = audit_file(file, auditor, on_answer=lambda n: progress.update(task, completed=n))
    summary = {**result.summary(), "kb_version": auditor.kb.version, "ranking": "hybrid" if dense else "bm25"}
    _print_summary(summary)
    for row in [r for r in result.rows if r.result.has_error][:show]:
        bad = [f"{c.status}: {c.text!r}" + (f" (KB: {c.expected})" if c.expected else "")
               for c in row.result.claims if c.status != "supported"]
        console.print(f"  [yellow]{row.id}[/] turn {row.turn}: " + "; ".join(bad[:4]), highlight=False)
    if out is not None:
        atomic_write_jsonl(out, [r.to_dict() for r in result.rows])
        atomic_write_json(out.with_suffix(".summary.json"), summary)
        plot = plot_audit(summary, out.with_suffix(".png"))
        console.print(f"report: {out} (+ {out.with_suffix('.summary.json').name}, {plot.name})")


def _print_summary(s: dict) -> None:
    lo, hi = s["error_rate_ci95"]
    m_lo, m_hi = s["missing_caveat_rate_ci95"]
    table = Table(title=f"audit of {s['source']}", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("answers audited", str(s["answers"]))
    table.add_row("answers with contradicted or unsupported claims",
                  f"{s['answers_with_error']} = {s['error_rate']:.1%} (95% CI {lo:.1%}–{hi:.1%})")
    table.add_row("answers with a contradicted claim", str(s["answers_with_contradiction"]))
    table.add_row("claims supported / unsupported / contradicted",
                  " / ".join(str(s["claims"].get(k, 0)) for k in ("supported", "unsupported", "contradicted")))
    table.add_row("policy-sensitive answers missing a caveat",
                  f"{s['missing_caveat']} of {s['policy_sensitive_answers']} = {s['missing_caveat_rate']:.1%} "
                  f"(95% CI {m_lo:.1%}–{m_hi:.1%})")
    table.add_row("answers with template scaffolding", f"{s['answers_with_scaffolding']} = "
                                                        f"{s['scaffolding_rate']:.1%}")
    if s["skipped_records"]:
        table.add_row("unusable records skipped", str(s["skipped_records"]))
    if s.get("answers_truncated"):
        from .audit import MAX_AUDIT_CHARS

        table.add_row(f"answers longer than {MAX_AUDIT_CHARS:,} characters (audited up to there)",
                      str(s["answers_truncated"]))
    console.print(table)
