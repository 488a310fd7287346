"""Review statistics: how many answers were reviewed, how often advisers had to correct them, and where.

"Corrected share" counts an answer as corrected when an adviser edited it or flagged one of its facts: both mean
a student was told something an adviser would not have said.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..significance import wilson_interval
from ..utils import save_figure
from .db import TurnLog
from .store import LogStore

BAD = ("edit", "fact_wrong", "fact_outdated")


def review_stats(store: LogStore) -> dict[str, Any]:
    with store.session() as s:
        turns = list(s.scalars(select(TurnLog).options(selectinload(TurnLog.actions)).order_by(TurnLog.id)))
    reviewed = [t for t in turns if t.actions]
    corrected = [t for t in reviewed if any(a.action in BAD for a in t.actions)]
    by_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in reviewed:
        day = min(a.created_at for a in t.actions).date().isoformat()
        by_day[day][0] += 1
        by_day[day][1] += t in corrected
    failing: Counter[str] = Counter()
    for t in turns:
        bad = t in corrected or (t.feedback is not None and t.feedback < 0)
        for topic in (t.topics or ["(no fact used)"]) if bad else []:
            failing[topic] += 1
    lo, hi = wilson_interval(len(corrected), len(reviewed)) if reviewed else (0.0, 0.0)
    return {
        "answers_logged": len(turns),
        "answers_reviewed": len(reviewed),
        "approved": sum(t.status == "approved" for t in turns),
        "corrected": len(corrected),
        "corrected_share": len(corrected) / len(reviewed) if reviewed else None,
        "corrected_share_ci95": [lo, hi],
        "thumbs_down": sum(1 for t in turns if t.feedback is not None and t.feedback < 0),
        "thumbs_up": sum(1 for t in turns if t.feedback is not None and t.feedback > 0),
        "pending": sum(t.status == "pending" for t in turns),
        "by_day": [{"day": d, "reviewed": n, "corrected": c, "corrected_share": c / n}
                   for d, (n, c) in sorted(by_day.items())],
        "top_failing_topics": [{"topic": k, "answers": v} for k, v in failing.most_common(10)],
    }


def plot_stats(stats: dict[str, Any], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    days = stats["by_day"]
    if days:
        a.plot([d["day"] for d in days], [100 * d["corrected_share"] for d in days], marker="o")
        a.tick_params(axis="x", rotation=30, labelsize=8)
    a.set_ylim(0, 105)
    a.set_ylabel("% of reviewed answers corrected")
    a.set_title(f"{stats['answers_reviewed']} reviewed of {stats['answers_logged']} logged")
    a.grid(alpha=0.3)
    topics = stats["top_failing_topics"][::-1]
    b.barh([t["topic"].replace("_", " ") for t in topics] or ["(none yet)"],
           [t["answers"] for t in topics] or [0], color="tab:red")
    b.set_xlabel("answers corrected, flagged or thumbs-down")
    b.set_title("Top failing topics")
    fig.suptitle("Adviser review")
    fig.tight_layout()
    return save_figure(fig, path)
