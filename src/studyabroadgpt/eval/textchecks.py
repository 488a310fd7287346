"""Surface checks on one answer: markdown formatting, abstention, length.

Caveat detection and policy sensitivity are NOT here on purpose: they live in ``studyabroadgpt.kb.audit``
(one definition for the whole project, shared with the factuality gate and the server).
"""
from __future__ import annotations

import re

from ..data.stats import has_markdown  # noqa: F401  (one definition, shared with dataset statistics)

# Declining to answer or deferring entirely (not the same as adding a caveat to a real answer).
_ABSTAIN = re.compile(
    r"\b(i\s+(do\s+not|don't|dont)\s+know"
    r"|i(\s+a|')m\s+not\s+(sure|certain|able\s+to)"
    r"|i\s+am\s+not\s+(sure|certain|able\s+to)"
    r"|i\s+(cannot|can't|can\s+not|am\s+unable\s+to|'m\s+unable\s+to)\s+(help|answer|provide|assist|give|say)"
    r"|i\s+(do\s+not|don't)\s+have\s+(enough\s+)?(information|access|data|up-to-date)"
    r"|as\s+an\s+ai(\s+language\s+model)?\b[^.]{0,40}\b(cannot|can't|don't|do\s+not))",
    re.IGNORECASE,
)


def is_abstention(text: str) -> bool:
    """True for an empty answer or one that declines/defers within its first 300 characters."""
    return not text.strip() or bool(_ABSTAIN.search(text[:300]))


def word_count(text: str) -> int:
    return len(text.split())
