"""The adviser's review report: what the knowledge base covers, how much of it was checked against the text of
its source pages, and what must be reviewed first.

Priority order (``review_queue``): entries whose source says something else (``mismatch``), then entries past
``review_after`` (oldest first), then policy-sensitive entries never verified against their source, then other
unverified entries, then entries due for review within 90 days. A student is harmed most by a wrong visa or funds
rule stated with an official citation, so among equals policy-sensitive entries come first.
"""
from __future__ import annotations

import datetime as dt
import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils import atomic_write_bytes, atomic_write_json, atomic_write_text
from .schema import DESTINATIONS, Entry
from .store import KnowledgeBase

SOON_DAYS = 90


@dataclass
class ReviewItem:
    entry: Entry
    reason: str       # mismatch | stale | unverified-policy | unverified | due-soon
    rank: int

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        v = e.verification
        return {"id": e.id, "kind": e.kind, "destination": e.destination, "topic": e.topic, "reason": self.reason,
                "review_after": str(e.review_after), "as_of": str(e.as_of), "source_url": str(e.source_url),
                "verification": None if v is None else {"status": v.status, "checked_on": str(v.checked_on)}}


_ORDER = {"mismatch": 0, "stale": 1, "unverified-policy": 2, "unverified": 3, "due-soon": 4}


def review_queue(kb: KnowledgeBase, today: dt.date | None = None) -> list[ReviewItem]:
    """Every entry that needs an adviser's look, most urgent first (see the module doc)."""
    today = today or dt.date.today()
    items = []
    for e in kb.entries:
        v = e.verification
        if v is not None and v.status == "mismatch":
            reason = "mismatch"
        elif e.review_after < today:
            reason = "stale"
        elif not e.is_verified:
            reason = "unverified-policy" if e.policy_sensitive else "unverified"
        elif (e.review_after - today).days <= SOON_DAYS:
            reason = "due-soon"
        else:
            continue
        items.append(ReviewItem(e, reason, 0))
    items.sort(key=lambda it: (_ORDER[it.reason], not it.entry.policy_sensitive, it.entry.review_after,
                               it.entry.id))
    for n, it in enumerate(items, start=1):
        it.rank = n
    return items


def review_summary(kb: KnowledgeBase, today: dt.date | None = None) -> dict[str, Any]:
    today = today or dt.date.today()
    queue = review_queue(kb, today)
    grid: dict[str, Counter] = defaultdict(Counter)
    verified: Counter = Counter()
    total: Counter = Counter()
    status: Counter = Counter()
    for e in kb.entries:
        grid[e.destination][e.topic] += 1
        total[e.destination] += 1
        verified[e.destination] += int(e.is_verified)
        status[e.verification.status if e.verification else "never checked"] += 1
    n = len(kb.entries)
    return {
        "date": str(today), "kb_version": kb.version, "entries": n, "facts": len(kb.facts),
        "guidance": len(kb.guidance), "destinations": len(kb.destinations),
        "topics": len({e.topic for e in kb.entries}),
        "verified": sum(verified.values()), "verified_share": sum(verified.values()) / n if n else 0.0,
        "verification_status": dict(status),
        "stale": sum(1 for it in queue if it.reason == "stale"),
        "by_destination": {d: {"country": DESTINATIONS.get(d, "any destination"), "entries": total[d],
                               "verified": verified[d], "verified_share": verified[d] / total[d],
                               "topics": dict(sorted(grid[d].items()))} for d in sorted(total)},
        "queue": [it.to_dict() for it in queue],
        "queue_counts": dict(Counter(it.reason for it in queue)),
    }


def plot_review(summary: dict[str, Any], path: str | Path) -> Path:
    """Entries by destination × topic (a heat map with counts), share verified per destination, and the review
    queue by reason."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    dests = list(summary["by_destination"])
    topics = sorted({t for d in dests for t in summary["by_destination"][d]["topics"]})
    grid = np.array([[summary["by_destination"][d]["topics"].get(t, 0) for t in topics] for d in dests])
    fig = plt.figure(figsize=(max(12, len(topics) * 0.32 + 4), max(7, len(dests) * 0.38 + 3)))
    gs = fig.add_gridspec(2, 2, width_ratios=[4, 1], height_ratios=[3, 1])
    ax = fig.add_subplot(gs[:, 0])
    im = ax.imshow(grid, aspect="auto", cmap="YlGnBu")
    ax.set_xticks(range(len(topics)), [t.replace("_", " ") for t in topics], rotation=90, fontsize=7)
    ax.set_yticks(range(len(dests)), dests, fontsize=8)
    for i in range(len(dests)):
        for j in range(len(topics)):
            if grid[i, j]:
                ax.text(j, i, str(grid[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if grid[i, j] > grid.max() / 2 else "black")
    ax.set_title(f"Entries by destination × topic ({summary['entries']} entries: {summary['facts']} facts, "
                 f"{summary['guidance']} guidance)")
    fig.colorbar(im, ax=ax, fraction=0.02)
    ax2 = fig.add_subplot(gs[0, 1])
    shares = [summary["by_destination"][d]["verified_share"] * 100 for d in dests]
    ax2.barh(dests, shares, color="#2a9d8f")
    ax2.invert_yaxis()
    ax2.set_xlim(0, 100)
    ax2.set_xlabel("% verified against source text")
    ax2.set_title(f"verified: {summary['verified_share']:.0%} overall", fontsize=9)
    ax2.tick_params(labelsize=7)
    ax3 = fig.add_subplot(gs[1, 1])
    reasons = [r for r in _ORDER if summary["queue_counts"].get(r)]
    ax3.bar(reasons, [summary["queue_counts"][r] for r in reasons],
            color=["#e76f51", "#f4a261", "#e9c46a", "#a8dadc", "#457b9d"][:len(reasons)])
    ax3.set_title("review queue (most urgent left)", fontsize=9)
    ax3.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.suptitle(f"Knowledge-base review, {summary['date']}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def review_markdown(summary: dict[str, Any], limit: int = 40) -> str:
    lines = [f"# Knowledge-base review — {summary['date']}", "",
             f"{summary['entries']} entries ({summary['facts']} facts, {summary['guidance']} guidance) over "
             f"{summary['destinations']} destinations and {summary['topics']} topics; "
             f"{summary['verified']} ({summary['verified_share']:.0%}) verified against the text of their source.",
             "", "## Review first", "", "| # | reason | entry | dest | topic | review after | source |",
             "|---|---|---|---|---|---|---|"]
    for it in summary["queue"][:limit]:
        lines.append(f"| {summary['queue'].index(it) + 1} | {it['reason']} | `{it['id']}` | {it['destination']} | "
                     f"{it['topic']} | {it['review_after']} | {it['source_url']} |")
    if len(summary["queue"]) > limit:
        lines.append(f"| … | {len(summary['queue']) - limit} more in review.json | | | | | |")
    lines += ["", "## Coverage and verification by destination", "", "| dest | country | entries | verified |",
              "|---|---|---|---|"]
    for d, row in summary["by_destination"].items():
        lines.append(f"| {d} | {row['country']} | {row['entries']} | {row['verified']} ({row['verified_share']:.0%}) |")
    return "\n".join(lines) + "\n"


def write_review(kb: KnowledgeBase, out_dir: str | Path, today: dt.date | None = None) -> dict[str, Path]:
    out = Path(out_dir)
    summary = review_summary(kb, today)
    return {"json": atomic_write_json(out / "review.json", summary),
            "markdown": atomic_write_text(out / "review.md", review_markdown(summary)),
            "plot": plot_review(summary, out / "review.png")}
