"""Redact personal data from questions before they are stored.

Students paste their lives into an advising chat: e-mail addresses, phone numbers, passport numbers, their
names. The log is for improving the answers, not for knowing who asked, so these are replaced by a tag
(``[email]``, ``[phone]``, ``[passport number]``, ``[name]``) before anything reaches the database. The
patterns are tuned on ``tests/review/pii_corpus.yaml`` to leave the figures advising is about (``£1,483``,
``20 hours``, ``IELTS 6.5``, ``2026-09-01``) alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A passport / national-id shape: 1-2 capital letters then 6-9 digits ("K1234567", "AB1234567"), or any
# 6-12 character letter/digit code right after the word passport.
_PASSPORT_SHAPE = re.compile(r"\b[A-Z]{1,2}\d{6,9}\b")
_PASSPORT_CUE = re.compile(
    r"(?i)(\bpassport(?:\s+(?:number|no\.?|num|#))?\s*(?:is|:|#)?\s*)([A-Z0-9]{6,12})\b")
# A phone number: optional +/00 country prefix, then digits with spaces, dots, dashes or brackets; counted as a
# phone only with >= 9 digits (or >= 8 with a + prefix), so years, amounts and scores never match. No commas:
# "1,483" is money.
_PHONE = re.compile(r"(?<![\w£$€¥.])(\+|00)?\(?\d[\d\s().-]{6,18}\d(?![\w%])")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# "my name is Ahmed Khan", "I'm called Priya", "this is Juan Carlos from Lima".
_NAME_CUE = re.compile(
    r"(?i)\b(my\s+name\s+is|my\s+name's|i\s+am\s+called|i'm\s+called|call\s+me|this\s+is)\s+"
    r"((?:[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'’-]*)(?:\s+[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'’-]*){0,2})")
# Words after the cue that end a name ("my name is Sara and I want...").
_NOT_NAME = frozenset("and i i'm im from a an the my me we but so to in at with who currently living studying "
                      "applying planning looking interested wondering on at back when if please".split())
_THIS_IS_NOT_NAME = frozenset("about for my a an the it is what how my question regarding related".split())


@dataclass(frozen=True)
class Redaction:
    kind: str
    start: int
    end: int


def _phone_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _PHONE.finditer(text):
        s = m.group(0).strip()
        digits = sum(c.isdigit() for c in s)
        if _ISO_DATE.match(s) or digits > 15:
            continue
        if digits >= 9 or (m.group(1) and digits >= 8):
            start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
            spans.append((start, start + len(s)))
    return spans


def _name_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _NAME_CUE.finditer(text):
        cue = m.group(1).lower()
        words = m.group(2).split()
        kept: list[str] = []
        for w in words:
            if w.lower().strip("'’") in _NOT_NAME:
                break
            kept.append(w)
        if not kept:
            continue
        if cue.startswith("this") and (kept[0].lower() in _THIS_IS_NOT_NAME or not kept[0][0].isupper()):
            continue  # "this is about funds", "this is my second question"
        start = m.start(2)
        end = start + len(" ".join(kept))
        # The regex allowed any spacing between words; find the real end in the original text.
        end = start + len(re.match(r"\S+(?:\s+\S+){%d}" % (len(kept) - 1), text[start:]).group(0))
        spans.append((start, end))
    return spans


def find_pii(text: str) -> list[Redaction]:
    found: list[Redaction] = []
    found += [Redaction("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    found += [Redaction("passport number", m.start(2), m.end(2)) for m in _PASSPORT_CUE.finditer(text)
              if any(c.isdigit() for c in m.group(2))]
    found += [Redaction("passport number", m.start(), m.end()) for m in _PASSPORT_SHAPE.finditer(text)]
    found += [Redaction("phone", s, e) for s, e in _phone_spans(text)]
    found += [Redaction("name", s, e) for s, e in _name_spans(text)]
    # Keep the first of overlapping spans in reading order (an e-mail's digits are not also a phone).
    found.sort(key=lambda r: (r.start, -(r.end - r.start)))
    kept: list[Redaction] = []
    for r in found:
        if kept and r.start < kept[-1].end:
            continue
        kept.append(r)
    return kept


def redact(text: str) -> str:
    """``text`` with every e-mail, phone number, passport-like number and self-introduced name replaced."""
    out, pos = [], 0
    for r in find_pii(text):
        out.append(text[pos:r.start])
        out.append(f"[{r.kind}]")
        pos = r.end
    out.append(text[pos:])
    return "".join(out)
