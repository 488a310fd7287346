"""Prompt sets for evaluation: what each system is asked, and the reference answer when there is one.

Two kinds of source are accepted:

* a prompt table (``.csv`` / ``.jsonl`` / ``.json``) with columns ``id, prompt[, reference]``;
* a conversations dataset (anything :func:`studyabroadgpt.data.load.load_valid` reads, e.g. the held-out
  split written by ``data split``). Either the first user turn of each conversation is asked (``mode="first"``),
  or every user turn is asked with the conversation so far as history (``mode="every"``); the reference is the
  assistant turn that followed it in the data.

Every problem names the file, the line and the field; nothing is skipped silently.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..data.io import DataError, detect_format, iter_raw
from ..data.load import load_valid

Mode = Literal["first", "every"]


@dataclass
class EvalItem:
    id: str
    messages: list[dict[str, str]]  # chat messages ending with the user turn to answer
    reference: str | None = None
    topic: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    category: str | None = None                # prompt-set category (e.g. "uncovered", "false_premise")
    checks: dict[str, Any] | None = None       # machine-readable expectations (see eval/student.py)
    expect: str | None = None                  # what a good answer does, for a human or a judge

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]


# The hand-written real-style prompt set (questions as students type them, with expectations): the default
# held-out set, because references written from our own KB reward grounding by construction.
REAL_STYLE = Path(__file__).with_name("prompts") / "real_style.jsonl"


def stratified(items: list[EvalItem], limit: int, seed: int = 0) -> list[EvalItem]:
    """``limit`` items drawn round-robin across categories (seeded), in the set's order: a short run still
    asks every kind of question instead of the first N of one kind."""
    import random

    if limit >= len(items):
        return list(items)
    groups: dict[str, list[EvalItem]] = {}
    for it in items:
        groups.setdefault(it.category or "", []).append(it)
    rng = random.Random(seed)
    for g in groups.values():
        rng.shuffle(g)
    picked: list[EvalItem] = []
    while len(picked) < limit:
        for g in groups.values():
            if g and len(picked) < limit:
                picked.append(g.pop())
    keep = {id(it) for it in picked}
    return [it for it in items if id(it) in keep]


def load_items(source: str | Path, mode: Mode = "first", split: str | None = None,
               limit: int | None = None) -> list[EvalItem]:
    """Read a prompt table or a conversations dataset into evaluation items (``limit`` keeps the first N)."""
    source_str = str(source)
    first = next(iter(iter_raw(source, split=split)), None)
    if first is None:
        raise DataError(f"{source_str}: holds no records")
    if first.data is not None and detect_format(first.data) is not None:
        items = _from_conversations(source, mode, split)
    else:
        items = _from_prompt_table(source, split)
    if not items:
        raise DataError(f"{source_str}: no prompts found")
    _check_unique_ids(items, source_str)
    return items[:limit] if limit else items


def _from_prompt_table(source: str | Path, split: str | None) -> list[EvalItem]:
    items: list[EvalItem] = []
    for rec in iter_raw(source, split=split):
        where = f"{rec.file}:{rec.line}"
        if rec.data is None:
            raise DataError(f"{where}: {rec.problems[0].message if rec.problems else 'unreadable record'}")
        row = rec.data
        for col in ("id", "prompt"):
            if col not in row:
                raise DataError(f"{where}: missing column {col!r} (a prompt file needs id, prompt[, reference]; "
                                f"found {sorted(row)})")
        prompt = row["prompt"]
        if not isinstance(prompt, str):
            raise DataError(f"{where}: field 'prompt' must be text, got {type(prompt).__name__}")
        if not prompt.strip():
            raise DataError(f"{where}: field 'prompt' is empty")
        ref = row.get("reference")
        if ref is not None and not isinstance(ref, str):
            ref = json.dumps(ref, ensure_ascii=False)
        messages = []
        if isinstance(row.get("system_prompt"), str) and row["system_prompt"].strip():
            messages.append({"role": "system", "content": row["system_prompt"]})
        history = row.get("messages")
        if history is not None:  # a follow-up: the conversation so far, ending with this prompt
            messages += _history(history, prompt, where)
        else:
            messages.append({"role": "user", "content": prompt})
        checks = parse_checks(row.get("checks"), where)
        items.append(EvalItem(id=str(row["id"]), messages=messages, reference=ref or None,
                              topic=row.get("topic") or None, category=opt_text(row.get("category")),
                              checks=checks or None, expect=opt_text(row.get("expect"))))
    return items


def parse_checks(v: Any, where: str) -> dict[str, Any] | None:
    """A ``checks`` cell: an object, or (from CSV) its JSON text; empty means none."""
    return json_cell(v, where, "checks", dict, "an object") or None


def json_cell(v: Any, where: str, field: str, expected: type, what: str) -> Any:
    """A cell holding a structured value: the value itself (JSONL) or its JSON text (a CSV cell has no other
    way to hold one); ``None`` when empty. A cell of the wrong kind is a DataError naming the row and field."""
    if v is None or v == "":
        return None
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: field {field!r} is not valid JSON (it must hold {what}): {exc}") from exc
    if not isinstance(v, expected):
        raise DataError(f"{where}: field {field!r} must be {what}, got {type(v).__name__}")
    return v


def opt_text(v: Any) -> str | None:
    """An optional text cell: ``None`` when missing or empty."""
    return None if v is None or v == "" else str(v)


def _history(history: Any, prompt: str, where: str) -> list[dict[str, str]]:
    if not isinstance(history, list) or not history:
        raise DataError(f"{where}: field 'messages' must be a non-empty list of {{role, content}}")
    out = []
    for k, m in enumerate(history):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: messages[{k}] must be {{role: system|user|assistant, content: text}}")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "user" or out[-1]["content"].strip() != prompt.strip():
        raise DataError(f"{where}: the last of 'messages' must be the user turn 'prompt'")
    return out


def _from_conversations(source: str | Path, mode: Mode, split: str | None) -> list[EvalItem]:
    loaded = load_valid(source, split=split)
    convs, quarantined = loaded.conversations, loaded.quarantined
    if quarantined:
        first = quarantined[0]
        reason = first["reasons"][0]["message"] if first["reasons"] else "invalid record"
        raise DataError(f"{first['file']}:{first['line']}: {reason} ({len(quarantined)} invalid record(s); "
                        "run `data validate` on this file first)")
    items: list[EvalItem] = []
    for conv in convs:
        history: list[dict[str, str]] = []
        user_turns = 0
        for i, turn in enumerate(conv.turns):
            if turn.role == "user":
                user_turns += 1
                nxt = conv.turns[i + 1] if i + 1 < len(conv.turns) else None
                reference = nxt.text if nxt is not None and nxt.role == "assistant" else None
                item_id = conv.id if mode == "first" else f"{conv.id}#{user_turns}"
                items.append(EvalItem(id=item_id, messages=history + [{"role": "user", "content": turn.text}],
                                      reference=reference, topic=conv.topic, meta={"source": conv.source}))
                if mode == "first":
                    break
            history.append({"role": turn.role, "content": turn.text})
    return items


def _check_unique_ids(items: list[EvalItem], source: str) -> None:
    seen: set[str] = set()
    dupes = sorted({it.id for it in items if it.id in seen or seen.add(it.id)})
    if dupes:
        raise DataError(f"{source}: duplicate ids {dupes[:5]}{' …' if len(dupes) > 5 else ''}: ids must be unique "
                        "to pair answers across systems")
