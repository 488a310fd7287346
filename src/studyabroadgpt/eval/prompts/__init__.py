"""Prompt sets shipped with the package (``real_style.jsonl``: hand-written real-style questions)."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

CATEGORIES = ("soft_advice", "policy_rule", "false_premise", "uncovered", "covered_destination", "vague",
              "follow_up")


def load_real_style() -> list[dict[str, Any]]:
    """The real-style prompt set: one dict per question (id, prompt, category, expect, optional messages and
    checks). Raises ValueError naming the line of a malformed row."""
    path = resources.files("studyabroadgpt") / "eval" / "prompts" / "real_style.jsonl"
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {n}: not JSON ({exc})") from None
        for key in ("id", "prompt", "category", "expect"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise ValueError(f"{path}: line {n}: field {key!r} missing or empty")
        if row["category"] not in CATEGORIES:
            raise ValueError(f"{path}: line {n}: field 'category': unknown {row['category']!r}")
        rows.append(row)
    return rows


def messages_of(row: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation to send for a row: its ``messages`` (follow-ups) or the single prompt."""
    return row.get("messages") or [{"role": "user", "content": row["prompt"]}]
