"""Value matching: does a figure or name in an answer equal, or contradict, what a fact vouches for?

A fact vouches for the structured ``values`` it carries and for every figure and name its own (sourced)
statement spells out. Both sides are normalised to a :class:`Checkable` — one kind of quantity with named
parts — so a claim and a fact compare part by part: same currency and period for money, same test for a score,
same unit family for a duration. The :class:`~.audit.Auditor` decides which facts to compare against; this
module only says whether two values are the same kind of quantity and, if so, whether they agree.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from .claims import Claim, ClaimKind, canonical_test, extract_claims, name_tokens
from .schema import Fact, Value
from .store import describe_value

COUNT = "count"  # a fact value kind with no claim kind of its own ("140 full days" is stored as a count)


@dataclass(frozen=True)
class Checkable:
    """A value a fact vouches for or a claim states, normalised to the claim kinds.

    Only the parts of its ``kind`` are set: money (amount, currency, period), score (test, score), duration
    (amount, unit, per), percentage and count (amount), date (month, day, year).
    """

    kind: str
    label: str
    amount: float | None = None
    currency: str | None = None
    period: str | None = None
    test: str | None = None
    score: float | None = None
    unit: str | None = None
    per: str | None = None
    month: int | None = None
    day: int | None = None
    year: int | None = None

    @property
    def number(self) -> float | None:
        """The figure two values of the same kind are compared by (the score of a score, else the amount)."""
        return self.score if self.kind == ClaimKind.SCORE else self.amount


def _close(a: float, b: float, rel: float = 1e-6) -> bool:
    """Equal up to float noise: a grounded answer quotes the sourced figure, so £1,490 is not £1,483."""
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


_MONTH_DAYS = {"hours": None, "days": 1 / 30.44, "weeks": 7 / 30.44, "months": 1.0, "years": 12.0}


def _in_months(amount: float, unit: str) -> float | None:
    factor = _MONTH_DAYS.get(unit if unit.endswith("s") else unit + "s")
    return None if factor is None else amount * factor


_DOLLARS = {"USD", "CAD", "AUD", "NZD", "SGD"}
_LOCAL_DOLLAR = {"US": "USD", "CA": "CAD", "AU": "AUD", "NZ": "NZD", "SG": "SGD"}


def _period(p: str | None) -> str | None:
    if p is None:
        return None
    p = p.lower().rstrip("s")
    return {"annum": "year", "annual": "year", "yearly": "year", "monthly": "month", "weekly": "week"}.get(p, p)


def from_value(v: Value) -> Checkable | None:
    """A fact's structured value as a :class:`Checkable` (None for kinds no claim can state)."""
    label = describe_value(v)
    if v.kind == "amount":
        return Checkable(ClaimKind.MONEY, label, amount=float(v.amount), currency=(v.currency or "").upper(),
                         period=_period(v.period))
    if v.kind == "score":
        return Checkable(ClaimKind.SCORE, label, test=canonical_test(v.test), score=float(v.min_score))
    if v.kind == "duration":
        return Checkable(ClaimKind.DURATION, label, amount=float(v.amount), unit=v.unit.lower().rstrip("s") + "s",
                         per=v.per or None)
    if v.kind == "percentage":
        return Checkable(ClaimKind.PERCENTAGE, label, amount=float(v.amount))
    if v.kind == "count":
        return Checkable(COUNT, label, amount=float(v.amount))
    if v.kind == "date":
        m = re.match(r"^(?:(\d{4})|-)-(\d{2})-(\d{2})$", v.date.strip())
        if m:
            return Checkable(ClaimKind.DATE, label, month=int(m.group(2)), day=int(m.group(3)),
                             year=int(m.group(1)) if m.group(1) else None)
    return None


def from_claim(c: Claim) -> Checkable:
    """A claim's value as a :class:`Checkable` (an entity carries no figure: kind only)."""
    v = c.value
    if c.kind == ClaimKind.MONEY:
        return Checkable(ClaimKind.MONEY, c.text, amount=float(v["amount"]), currency=v["currency"],
                         period=v["period"])
    if c.kind == ClaimKind.SCORE:
        return Checkable(ClaimKind.SCORE, c.text, test=v["test"], score=float(v["score"]))
    if c.kind == ClaimKind.DURATION:
        return Checkable(ClaimKind.DURATION, c.text, amount=float(v["amount"]), unit=v["unit"], per=v["per"])
    if c.kind == ClaimKind.PERCENTAGE:
        return Checkable(ClaimKind.PERCENTAGE, c.text, amount=float(v["amount"]))
    if c.kind == ClaimKind.DATE:
        return Checkable(ClaimKind.DATE, c.text, month=v["month"], day=v["day"], year=v["year"])
    return Checkable(c.kind, c.text)


def compatible(claim: Checkable, fact: Checkable, destination: str | None) -> bool:
    """Do the two measure the same kind of quantity (so a different number is a contradiction)?"""
    if claim.kind != fact.kind:
        return False
    if claim.kind == ClaimKind.MONEY:
        if claim.currency == "$":
            ok = fact.currency in _DOLLARS and (destination is None or
                                                _LOCAL_DOLLAR.get(destination, fact.currency) == fact.currency)
        else:
            ok = claim.currency == fact.currency
        return ok and (claim.period is None or fact.period is None or claim.period == fact.period)
    if claim.kind == ClaimKind.SCORE:
        return claim.test == fact.test
    if claim.kind == ClaimKind.DURATION:
        if (claim.unit == "hours") != (fact.unit == "hours"):
            return False
        return claim.per == fact.per if claim.unit == "hours" else (claim.per is None) == (fact.per is None)
    return claim.kind in (ClaimKind.PERCENTAGE, ClaimKind.DATE)


def matches(claim: Checkable, fact: Checkable, destination: str | None) -> bool:
    """Does the fact's value support the claim (same kind of quantity, same figure)?"""
    if claim.kind == ClaimKind.DURATION and fact.kind == COUNT:
        return _close(claim.amount, fact.amount)  # "140 full days" is stored as a count of days
    if not compatible(claim, fact, destination):
        return False
    if claim.kind in (ClaimKind.MONEY, ClaimKind.PERCENTAGE):
        return _close(claim.amount, fact.amount)
    if claim.kind == ClaimKind.SCORE:
        return _close(claim.score, fact.score, 1e-6)
    if claim.kind == ClaimKind.DURATION:
        if claim.unit == "hours" or claim.unit == fact.unit:
            return _close(claim.amount, fact.amount)
        # "2 years" is "24 months"; across days and months allow the calendar's slack ("90 days" ~ "3 months")
        return _close(_in_months(claim.amount, claim.unit), _in_months(fact.amount, fact.unit), 0.02)
    if claim.kind == ClaimKind.DATE:
        return (claim.month == fact.month and claim.day == fact.day and
                (claim.year is None or fact.year is None or claim.year == fact.year))
    return False


def distance(a: Checkable, b: Checkable) -> float:
    """How far apart two compatible values are (to pick the fact value a wrong figure most likely meant).

    Dates are compared by month: a wrong "15 March" deadline most likely meant the fact's March date.
    """
    x, y = (a.month, b.month) if a.kind == ClaimKind.DATE else (a.number, b.number)
    if x is None or y is None:
        return 0.0
    return abs(float(x) - float(y))


@lru_cache(maxsize=4096)
def _statement_checkables(statement: str) -> tuple[Checkable, ...]:
    """Figures a fact's own sentence states (its statement is sourced, so they count as support)."""
    return tuple(from_claim(c) for c in extract_claims(statement) if c.kind != ClaimKind.ENTITY)


def fact_checkables(fact: Fact) -> list[Checkable]:
    """Every value ``fact`` vouches for: its structured values, then the figures of its statement."""
    out = [c for c in (from_value(v) for v in fact.values) if c is not None]
    return out + list(_statement_checkables(fact.statement))


@lru_cache(maxsize=4096)
def _statement_names(statement: str) -> tuple[str, ...]:
    return tuple(v for c in extract_claims(statement) if c.kind == ClaimKind.ENTITY for v in c.value["variants"])


def fact_names(fact: Fact, level: int = 0) -> list[frozenset[str]]:
    """Names a fact vouches for: its entities and aliases, and any name its statement or source title spells out."""
    names = [name_tokens(n, level) for e in fact.entities for n in [e.name, *e.aliases]]
    names += [name_tokens(v, level) for text in (fact.statement, fact.source_title) for v in _statement_names(text)]
    return [n for n in names if n]


def same_name(mention: frozenset[str], known: frozenset[str]) -> bool:
    """The mention's words all belong to the known name and make up at least half of it.

    "Fulbright Program" is the "Fulbright Foreign Student Program"; "Education Scholarship" is not "World
    Education Services".
    """
    return mention <= known and 2 * len(mention) >= len(known)


__all__ = ["COUNT", "Checkable", "compatible", "distance", "fact_checkables", "fact_names", "from_claim",
           "from_value", "matches", "same_name"]
