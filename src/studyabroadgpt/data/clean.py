"""Cleaning: fix what can be fixed mechanically and count every change.

Unicode NFC, control characters, whitespace, role aliases, merging consecutive same-role turns and dropping empty
turns. A record that is still invalid after cleaning (unknown role, no assistant answer…) goes to quarantine.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

from .io import LooseConversation, LooseTurn, Problem, RawRecord, normalise_role, parse_loose, to_conversation
from .schema import Conversation
from .validate import DEFAULT_MAX_CHARS, check_loose

# C0/C1 control characters except tab and newline; plus zero-width and BOM characters that break tokenisers.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200c\u200d\u2060\ufeff]")
_MANY_BLANKS = re.compile(r"\n{3,}")


# The same control characters within ASCII (the class above minus its non-ASCII part), for the fast test below.
_CONTROL_ASCII = bytes(c for c in range(128) if _CONTROL.match(chr(c)))


def clean_text(text: str, changes: Counter) -> str:
    # Fast paths, same output: most texts are ASCII with nothing to fix, and each regex pass over them cost more
    # than the test that skips it (µs per ~500-char turn, loaded machine: control-character sub 9.1 vs a bytes
    # delete-translate 1.8; blank-run sub 14.1 vs a substring test 1.2; per-line rstrip 9.1 vs 3.1).
    # tests/data/test_clean_dedup_split.py checks them against the plain regex version on awkward inputs.
    if text.isascii():  # O(1) in CPython; ASCII text is already NFC
        out = text
        fixed = out.replace("\r\n", "\n").replace("\r", "\n") if "\r" in out else out
        raw = fixed.encode()
        if len(raw.translate(None, _CONTROL_ASCII)) != len(raw):
            fixed = _CONTROL.sub("", fixed)
    else:
        out = unicodedata.normalize("NFC", text)
        if out != text:
            changes["unicode_nfc"] += 1
        fixed = _CONTROL.sub("", out.replace("\r\n", "\n").replace("\r", "\n"))
    if fixed != out:
        changes["control_chars"] += 1
    out = fixed
    # per-line rstrip, not a regex: `[ \t]+\n` backtracks quadratically on a long run of spaces without a
    # newline (300,000 spaces took > 30 s); this is linear and gives the same text. Only a line followed by a
    # newline can need it (the last line's trailing blanks go with the final strip()).
    lines = "\n".join(line.rstrip(" \t") for line in out.split("\n")) if " \n" in out or "\t\n" in out else out
    fixed = (_MANY_BLANKS.sub("\n\n", lines) if "\n\n\n" in lines else lines).strip()
    if fixed != out:
        changes["whitespace"] += 1
    return fixed


def clean_loose(loose: LooseConversation, changes: Counter) -> LooseConversation:
    turns: list[LooseTurn] = []
    for t in loose.turns:
        text = clean_text(t.text, changes)
        role = normalise_role(t.role)
        if role is not None and role != t.role:
            changes["role_alias"] += 1
        if not text:
            changes["empty_turn_dropped"] += 1
            continue
        turn = LooseTurn(role or t.role, text, t.field, list(t.provenance))
        if turns and role is not None and turns[-1].role == role:
            # Two user (or assistant) turns in a row are one turn split by an export tool.
            prev = turns[-1]
            turns[-1] = LooseTurn(role, f"{prev.text}\n\n{text}", prev.field, prev.provenance + turn.provenance)
            changes["merged_turns"] += 1
            continue
        turns.append(turn)
    return LooseConversation(loose.id, turns, loose.topic, loose.source, loose.metadata)


def clean_record(rec: RawRecord, changes: Counter, max_chars: int = DEFAULT_MAX_CHARS
                 ) -> tuple[Conversation | None, list[Problem]]:
    loose, problems = parse_loose(rec)
    if loose is None:
        return None, problems
    cleaned = clean_loose(loose, changes)
    problems += check_loose(cleaned, rec.file, rec.line, max_chars)
    if problems:
        return None, problems
    return to_conversation(cleaned), []
