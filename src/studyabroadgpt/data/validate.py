"""Record validation: every problem with file, line and field; rejected records go to quarantine.

A record is rejected when it cannot be used for training as it stands: unknown role, empty text,
non-alternating roles, the first non-system turn not from the user, the last turn not from the assistant,
a record longer than ``max_chars``, or anything the reader could not decode.
"""
from __future__ import annotations

from .io import LooseConversation, Problem, RawRecord, normalise_role, parse_loose, to_conversation
from .schema import Conversation

DEFAULT_MAX_CHARS = 100_000  # ~25k tokens: far past any training length, so only runaway records trip it


def check_loose(loose: LooseConversation, file: str, line: int, max_chars: int = DEFAULT_MAX_CHARS) -> list[Problem]:
    problems: list[Problem] = []
    if not loose.turns:
        return [Problem(file, line, "<record>", "conversation has no turns", "empty")]
    prev = None
    seen_non_system = False
    total = 0
    for t in loose.turns:
        role = normalise_role(t.role)
        total += len(t.text)
        if role is None:
            problems.append(Problem(file, line, f"{t.field}.role", f"unknown role {t.role!r} (expected one of "
                                    "system, user/human, assistant/gpt)", "role"))
            prev = None
            continue
        if not t.text.strip():
            problems.append(Problem(file, line, f"{t.field}.text", f"empty {role} turn", "empty"))
        if role == "system":
            if seen_non_system:
                problems.append(Problem(file, line, f"{t.field}.role", "system turn after the conversation "
                                        "started", "order"))
            continue
        if not seen_non_system and role != "user":
            problems.append(Problem(file, line, f"{t.field}.role", f"first turn must be from the user, got "
                                    f"{role}", "order"))
        elif prev is not None and role == prev:
            problems.append(Problem(file, line, f"{t.field}.role", f"roles must alternate: two {role} turns in "
                                    "a row", "alternation"))
        seen_non_system = True
        prev = role
    if prev == "user":
        problems.append(Problem(file, line, f"{loose.turns[-1].field}.role", "last turn is from the user: "
                                "nothing to learn from", "order"))
    if not seen_non_system:
        problems.append(Problem(file, line, "<record>", "conversation has only system turns", "empty"))
    if total > max_chars:
        problems.append(Problem(file, line, "<record>", f"record too long: {total:,} characters > max "
                                f"{max_chars:,}", "too_long"))
    return problems


def validate_record(rec: RawRecord, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[Conversation | None, list[Problem]]:
    loose, problems = parse_loose(rec)
    if loose is None:
        return None, problems
    problems += check_loose(loose, rec.file, rec.line, max_chars)
    if problems:
        return None, problems
    return to_conversation(loose), []
