"""Prompt sets shipped with the package (``real_style.jsonl``: hand-written real-style questions)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

CATEGORIES = ("soft_advice", "policy_rule", "false_premise", "uncovered", "covered_destination", "vague",
              "follow_up")


def load_real_style() -> list[dict[str, Any]]:
    """The real-style prompt set: one dict per question (id, prompt, category, expect, optional messages and
    checks). Raises ValueError naming the line and field of a malformed row."""
    with resources.as_file(resources.files("studyabroadgpt") / "eval" / "prompts" / "real_style.jsonl") as path:
        return read_prompt_rows(path)


def read_prompt_rows(path: str | Path) -> list[dict[str, Any]]:
    """A prompt set in the real-style format, read with the package's one JSONL reader (``data.io.iter_raw``);
    the first bad row is a ValueError ``file:line: field: what is wrong``."""
    from ...data.io import iter_raw

    rows = []
    for rec in iter_raw(path):
        if rec.problems:
            raise ValueError(str(rec.problems[0]))
        row, where = rec.data, f"{rec.file}:{rec.line}"
        for key in ("id", "prompt", "category", "expect"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise ValueError(f"{where}: field {key!r} missing or empty")
        if row["category"] not in CATEGORIES:
            raise ValueError(f"{where}: field 'category': unknown {row['category']!r}; use one of "
                             f"{', '.join(CATEGORIES)}")
        rows.append(row)
    return rows


def messages_of(row: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation to send for a row: its ``messages`` (follow-ups) or the single prompt."""
    return row.get("messages") or [{"role": "user", "content": row["prompt"]}]
