"""Reviewer findings about the knowledge base → a YAML patch for a human to merge.

Nothing an adviser clicks changes the shipped KB directly: a fact marked wrong or outdated comes out as a copy of
that fact with ``review_after`` moved to the review date (so ``kb stale`` lists it until someone fixes it), and a
proposed new fact comes out as a complete KB entry with its source. Every entry is preceded by comments saying who
asked for what and why. The file is in the KB's own format, so ``sagpt kb validate PATCH`` checks it, and merging
it is a copy-paste into ``kb/facts/<iso>.yaml`` after checking the source.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml

from ..utils import atomic_write_text
from .store import LogStore

PROPOSAL_REVIEW_DAYS = 90  # a proposed fact is new and unconfirmed: it comes up for review again soon


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "fact"


def _comment(lines: list[str]) -> str:
    return "".join(f"# {ln}\n" for text in lines for ln in str(text).splitlines() or [""])


def proposal_entries(store: LogStore, kb: Any) -> list[tuple[list[str], dict[str, Any]]]:
    """(comment lines, KB entry) for every fact flagged or proposed, in the order advisers acted."""
    by_id = kb.by_id
    entries: list[tuple[list[str], dict[str, Any]]] = []
    flagged: dict[str, int] = {}
    for act, turn in store.actions(("fact_wrong", "fact_outdated", "propose")):
        day = act.created_at.date()
        who = f"{act.reviewer} on {day.isoformat()} (review action {act.id}, answer {turn.id})"
        if act.action in ("fact_wrong", "fact_outdated"):
            fact = by_id.get(act.fact_id)
            what = "WRONG" if act.action == "fact_wrong" else "OUTDATED"
            if fact is None:
                entries.append(([f"{what}: fact {act.fact_id!r} flagged by {who} is no longer in the KB "
                                 f"(KB version {act.kb_version}); nothing to patch."], {}))
                continue
            if act.fact_id in flagged:  # one entry per fact; later flags add their notes to it
                entries[flagged[act.fact_id]][0].append(f"also {what} per {who}: {act.note or '(no note)'}")
                continue
            entry = fact.model_dump(mode="json", exclude_defaults=True)
            entry["review_after"] = max(day, fact.as_of + dt.timedelta(days=1)).isoformat()
            lines = [f"{what}: {act.fact_id} — flagged by {who}",
                     f"adviser's note: {act.note or '(none)'}",
                     "review_after moved to the review date so `sagpt kb stale` lists this fact until it is "
                     "re-checked against its source and corrected."]
            flagged[act.fact_id] = len(entries)
            entries.append((lines, entry))
        else:
            p = act.proposal or {}
            dest = str(p["destination"]).strip().upper()
            entry = {"id": f"{dest.lower()}-{_slug(str(p['topic']))}-proposed-{act.id}", "destination": dest,
                     "topic": str(p["topic"]).strip(), "statement": str(p["statement"]).strip(),
                     "source_url": str(p["source_url"]).strip(),
                     "source_title": str(p.get("source_title") or "").strip() or _host(str(p["source_url"])),
                     "as_of": day.isoformat(),
                     "review_after": (day + dt.timedelta(days=PROPOSAL_REVIEW_DAYS)).isoformat()}
            if p.get("keywords"):
                entry["keywords"] = [str(k) for k in p["keywords"]]
            lines = [f"NEW {p.get('kind') or 'fact'} proposed by {who}",
                     f"adviser's note: {act.note or '(none)'}"]
            if p.get("replaces"):
                lines.append(f"replaces: {p['replaces']}")
            lines.append("Check the statement against the source page before merging; add structured `values` "
                         "for any figure so the factuality gate can check answers against it.")
            entries.append((lines, entry))
    return entries


def _host(url: str) -> str:
    from urllib.parse import urlparse

    return urlparse(url).netloc or url


def write_proposals(store: LogStore, kb: Any, out: str | Path) -> tuple[Path, int, list[Any]]:
    """Write the patch and check it with the KB's own validator; returns (path, entries, problems)."""
    from ..kb.store import check_kb

    entries = proposal_entries(store, kb)
    head = _comment([f"Knowledge-base changes proposed by advisers (generated {dt.date.today().isoformat()},",
                     f"against KB version {kb.version}). Validate: sagpt kb validate {Path(out).name}",
                     "Merge by hand into src/studyabroadgpt/kb/facts/<iso>.yaml after checking each source."])
    body = []
    for lines, entry in entries:
        chunk = _comment(lines)
        if entry:
            chunk += yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=110)
        body.append(chunk)
    text = head + "\n" + "\n".join(body) if body else head + "[]\n"
    if body and not any(entry for _, entry in entries):
        text += "[]\n"
    path = atomic_write_text(out, text)
    n = sum(1 for _, e in entries if e)
    problems = [] if n == 0 else check_kb(path)[1]
    return path, n, problems
