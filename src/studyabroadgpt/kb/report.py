"""Auditing whole files: datasets (ShareGPT / messages / Alpaca) and model-output files (id, prompt, response).

Every assistant answer becomes one report row; the dataset-level figure is the share of answers with a
contradicted or unsupported claim, with a Wilson 95% interval (``significance.wilson_interval``) so a rate measured on
eight conversations is not read as if it came from eight thousand.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..data.io import DataError, iter_raw, quarantine_row
from ..significance import wilson_interval
from .audit import Auditor, AuditResult

OUTPUT_PROMPT_KEYS = ("prompt", "question", "input")
OUTPUT_RESPONSE_KEYS = ("response", "output", "answer", "completion", "prediction")


@dataclass
class AnswerRow:
    id: str
    turn: int
    question: str
    result: AuditResult

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "turn": self.turn, "question": self.question[:300], **self.result.to_dict()}


@dataclass
class FileAudit:
    source: str
    rows: list[AnswerRow] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)   # records that are neither a conversation nor an output

    def summary(self) -> dict[str, Any]:
        n = len(self.rows)
        errors = sum(r.result.has_error for r in self.rows)
        lo, hi = wilson_interval(errors, n)
        sensitive = [r for r in self.rows if r.result.policy_sensitive]
        missing = sum(r.result.missing_caveat for r in sensitive)
        m_lo, m_hi = wilson_interval(missing, len(sensitive))
        scaffold = sum(bool(r.result.scaffolding) for r in self.rows)
        statuses: Counter = Counter()
        by_kind: Counter = Counter()
        for r in self.rows:
            for c in r.result.claims:
                statuses[c.status] += 1
                by_kind[(c.kind, c.status)] += 1
        return {
            "source": self.source, "answers": n, "answers_with_error": errors,
            "error_rate": errors / n if n else 0.0, "error_rate_ci95": [lo, hi],
            "answers_with_contradiction": sum(bool(r.result.contradicted) for r in self.rows),
            "policy_sensitive_answers": len(sensitive), "missing_caveat": missing,
            "missing_caveat_rate": missing / len(sensitive) if sensitive else 0.0,
            "missing_caveat_rate_ci95": [m_lo, m_hi],
            "answers_with_scaffolding": scaffold, "scaffolding_rate": scaffold / n if n else 0.0,
            "claims": dict(statuses), "claims_by_kind": {f"{k}:{s}": v for (k, s), v in sorted(by_kind.items())},
            "skipped_records": len(self.skipped),
            "answers_truncated": sum(r.result.truncated for r in self.rows),  # audited only up to the limit
        }


def iter_answers(path: str | Path) -> Iterator[tuple[str, int, str, str] | dict]:
    """Yield (id, turn index, question, answer) for every assistant answer; a dict for an unusable record."""
    from ..data.validate import validate_record

    for rec in iter_raw(path):
        data = rec.data
        if isinstance(data, dict):
            resp_key = next((k for k in OUTPUT_RESPONSE_KEYS if isinstance(data.get(k), str)), None)
            if resp_key and not any(k in data for k in ("conversations", "messages")):
                prompt_key = next((k for k in OUTPUT_PROMPT_KEYS if k in data and k != resp_key), None)
                rid = str(data.get("id", f"{Path(rec.file).stem}-{rec.line}"))
                yield rid, 0, str(data.get(prompt_key) or "") if prompt_key else "", data[resp_key]
                continue
        conv, problems = validate_record(rec)
        if conv is None:
            yield quarantine_row(rec, problems)
            continue
        question = ""
        for i, turn in enumerate(conv.turns):
            if turn.role == "user":
                question = turn.text
            elif turn.role == "assistant":
                yield conv.id, i, question, turn.text


def audit_file(path: str | Path, auditor: Auditor, on_answer: Callable[[int], None] | None = None) -> FileAudit:
    if not Path(path).exists():
        raise DataError(f"{path}: no such file or directory")
    out = FileAudit(source=str(path))
    for item in iter_answers(path):
        if isinstance(item, dict):
            out.skipped.append(item)
            continue
        rid, turn, question, answer = item
        result = auditor.audit_answer(answer, question, id=rid)
        out.rows.append(AnswerRow(rid, turn, question, result))
        if on_answer:
            on_answer(len(out.rows))
    return out


def plot_audit(summary: dict[str, Any], path: str | Path) -> Path:
    """Claim statuses by kind (stacked bars) and the answer-level error rate with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..utils import save_figure

    kinds = sorted({k.split(":")[0] for k in summary["claims_by_kind"]})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 1]})
    bottom = [0] * len(kinds)
    colours = {"supported": "#2a9d8f", "unsupported": "#e9c46a", "contradicted": "#e76f51"}
    for status, colour in colours.items():
        vals = [summary["claims_by_kind"].get(f"{k}:{status}", 0) for k in kinds]
        ax1.bar(kinds, vals, bottom=bottom, color=colour, label=status)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_title("Claims by kind and audit status")
    ax1.set_ylabel("claims")
    ax1.legend()
    rate, (lo, hi) = summary["error_rate"], summary["error_rate_ci95"]
    ax2.bar(["answers with\nerrors"], [rate * 100], color="#e76f51",
            yerr=[[max(0.0, (rate - lo) * 100)], [max(0.0, (hi - rate) * 100)]], capsize=8)
    ax2.set_ylim(0, 100)
    ax2.set_ylabel("% of answers (Wilson 95% CI)")
    ax2.set_title(f"n = {summary['answers']}")
    fig.suptitle(f"Claim audit: {Path(summary['source']).name}")
    fig.tight_layout()
    return save_figure(fig, path)
