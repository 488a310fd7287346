"""The knowledge-base fact format (documented in docs/knowledge-base.md).

A fact is one sourced, dated statement about one destination and one topic, with structured ``values`` that
the claim audit and the factuality gate compare numbers against. Files are YAML lists of facts.
"""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator


class KBError(Exception):
    """A knowledge-base file that cannot be loaded (bad YAML, bad schema), with file and field."""


TOPICS = (
    "student_visa", "proof_of_funds", "english_tests", "admissions_tests", "work_rights", "post_study_work",
    "health_cover", "tuition_costs", "living_costs", "scholarships", "application_timelines", "dependants",
    "accommodation", "credential_recognition", "arrival_registration",
)

# Topics on which an answer must point the student to the official source (visa rules change without notice).
POLICY_SENSITIVE = {"student_visa", "proof_of_funds", "health_cover", "work_rights", "post_study_work",
                    "dependants", "arrival_registration"}

DESTINATIONS = {
    "GB": "United Kingdom", "US": "United States", "CA": "Canada", "AU": "Australia", "DE": "Germany",
    "IE": "Ireland", "NL": "Netherlands", "NZ": "New Zealand", "FR": "France", "JP": "Japan",
    "SE": "Sweden", "DK": "Denmark", "FI": "Finland", "NO": "Norway", "SG": "Singapore", "KR": "South Korea",
}

ValueKind = Literal["amount", "score", "duration", "date", "count", "percentage", "text"]


class Value(BaseModel):
    """One checkable quantity of a fact.

    ``key`` names the quantity within its destination (e.g. ``funds.london.monthly``); two facts giving the
    same destination+key different values are a conflict that ``kb validate`` reports.
    """

    key: str
    kind: ValueKind
    amount: float | None = None        # amount / count / percentage / duration magnitude
    currency: str | None = None        # ISO 4217 for amounts: GBP, USD, CAD, AUD, EUR, NZD…
    period: str | None = None          # amount per: year, month, week, once
    test: str | None = None            # score: IELTS, TOEFL iBT, PTE Academic, Duolingo, GRE, GMAT, MCAT, SAT, UCAT…
    min_score: float | None = None     # score: minimum (overall unless ``section`` is set)
    section: str | None = None         # score: e.g. "each component"
    unit: str | None = None            # duration: hours, days, weeks, months, years
    per: str | None = None             # duration: "week" for hours per week
    date: str | None = None            # date: ISO date or a recurring --MM-DD
    text: str | None = None            # text: a named thing (visa, programme, scholarship) or a rule

    @model_validator(mode="after")
    def _required_for_kind(self) -> "Value":
        need = {"amount": ["amount", "currency"], "score": ["test", "min_score"], "duration": ["amount", "unit"],
                "date": ["date"], "count": ["amount"], "percentage": ["amount"], "text": ["text"]}[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"value {self.key!r} of kind {self.kind} needs {', '.join(missing)}")
        return self


class Entity(BaseModel):
    """A named thing the fact vouches for, so the audit can tell real names from invented ones."""

    name: str
    type: Literal["visa", "test", "programme", "scholarship", "insurance", "organisation", "document", "other"]
    aliases: list[str] = Field(default_factory=list)


class Fact(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    destination: str
    topic: str
    statement: str = Field(min_length=10)
    values: list[Value] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    source_url: HttpUrl
    source_title: str
    as_of: dt.date
    review_after: dt.date

    @field_validator("destination")
    @classmethod
    def _known_destination(cls, v: str) -> str:
        if v not in DESTINATIONS:
            raise ValueError(f"unknown destination {v!r}; use an ISO code from {sorted(DESTINATIONS)}")
        return v

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, v: str) -> str:
        if v not in TOPICS:
            raise ValueError(f"unknown topic {v!r}; use one of {', '.join(TOPICS)}")
        return v

    @field_validator("source_url")
    @classmethod
    def _https(cls, v: HttpUrl) -> HttpUrl:
        if v.scheme != "https":
            raise ValueError("source_url must be an https URL of an official page")
        return v

    @model_validator(mode="after")
    def _dates(self) -> "Fact":
        if self.review_after <= self.as_of:
            raise ValueError("review_after must be later than as_of")
        return self

    @property
    def policy_sensitive(self) -> bool:
        return self.topic in POLICY_SENSITIVE

    @property
    def country(self) -> str:
        return DESTINATIONS[self.destination]

    def search_text(self) -> str:
        """What retrieval indexes: the statement plus names and keywords."""
        names = " ".join(e.name + " " + " ".join(e.aliases) for e in self.entities)
        return f"{self.country} {self.topic.replace('_', ' ')}: {self.statement} {names} {' '.join(self.keywords)}"
