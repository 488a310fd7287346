"""The knowledge-base entry formats (documented in docs/knowledge-base.md).

Two kinds of entry share one shape for everything the answer path reads (id, kind, destination, country, topic,
statement, source_url, source_title, as_of, review_after, policy_sensitive, search_text()):

* a **fact** is one sourced, dated rule or figure about one destination and one topic, with structured
  ``values`` that the claim audit and the factuality gate compare numbers against;
* a **guidance** entry is sourced advice that is not a rule or a figure (how to write a statement of purpose,
  what to check before signing a lease): a one-paragraph ``statement`` plus ``steps`` and ``watch_out`` lists,
  for an ``audience`` (levels of study) and a destination or ``"any"``. It has no ``values``: the gate never
  corrects a number against advice.

Either kind may record ``verified``: whether its statement was checked against the text of its source page.
"""
from __future__ import annotations

import datetime as dt
from typing import ClassVar, Collection, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationInfo, field_validator, model_validator


KIND_FACT, KIND_GUIDANCE = "fact", "guidance"
ANY = "any"  # guidance that applies whatever the destination (or whatever the level of study)


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

# Guidance topics: the questions students ask that have no rule or figure as their answer. Guidance may also
# use a fact topic (advice on the student visa application itself, say).
GUIDANCE_TOPICS = (
    "personal_statement", "recommendation_letters", "cv_resume", "choosing_programme", "choosing_destination",
    "rankings", "application_strategy", "test_preparation", "admissions_interview", "visa_interview",
    "scholarship_search", "phd_applications", "research_assistantships", "teaching_assistantships",
    "budgeting", "banking", "phone_internet", "accommodation_search", "scams_safety", "pre_departure", "packing",
    "arrival_checklist", "health_registration", "mental_health", "disability_support", "culture_shock",
    "making_friends", "clubs_societies", "language_support", "academic_writing", "academic_integrity",
    "study_skills", "part_time_jobs", "internships", "careers", "taxes", "family_planning", "deferral",
    "transferring", "credential_evaluation", "exchange_programmes", "returning_home",
)

# Guidance topics on which rules stand behind the advice, so an answer must point to the official source too.
GUIDANCE_POLICY_SENSITIVE = {"visa_interview", "taxes", "health_registration", "family_planning",
                             "part_time_jobs", "internships", "arrival_checklist", "deferral", "transferring"}

# Who a guidance entry is written for. ``any`` means every level of study.
AUDIENCES = (ANY, "undergraduate", "masters", "mba", "phd", "exchange", "foundation", "language_course")

# Every destination an entry may name. What the KB *covers* is the set of destinations its entries actually have
# (``KnowledgeBase.destinations``); a code listed here with no entries is reported as uncovered by ``kb coverage``.
DESTINATIONS = {
    "GB": "United Kingdom", "US": "United States", "CA": "Canada", "AU": "Australia", "DE": "Germany",
    "IE": "Ireland", "NL": "Netherlands", "NZ": "New Zealand", "FR": "France", "JP": "Japan",
    "SE": "Sweden", "DK": "Denmark", "FI": "Finland", "NO": "Norway", "SG": "Singapore", "KR": "South Korea",
    "MY": "Malaysia", "CN": "China", "AE": "United Arab Emirates", "HK": "Hong Kong", "IT": "Italy",
    "ES": "Spain", "CH": "Switzerland", "AT": "Austria", "BE": "Belgium", "PL": "Poland",
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
    type: Literal["visa", "test", "programme", "scholarship", "insurance", "organisation", "document", "university",
                  "service", "other"]
    aliases: list[str] = Field(default_factory=list)




class Verification(BaseModel):
    """Whether, when and how an entry's statement was checked against the text of its source page.

    ``status``: ``verified`` (the page text states it; ``excerpt`` quotes the passage), ``unverified`` (checked,
    but no stored copy of the page was found or the page did not show the statement; ``note`` says which) or
    ``mismatch`` (the page says something else: the entry must be fixed before it is trusted).
    ``method``: ``stored_copy`` (a stored copy of the page, e.g. the search tool's ``pages`` corpus) or ``manual``
    (a person read the live page).
    """

    model_config = ConfigDict(extra="forbid")

    status: Literal["verified", "unverified", "mismatch"]
    checked_on: dt.date
    method: Literal["stored_copy", "manual"] = "stored_copy"
    excerpt: str | None = Field(default=None, min_length=10)
    url: HttpUrl | None = None       # the page actually read, when it is not ``source_url`` itself
    note: str | None = None

    @model_validator(mode="after")
    def _excerpt_when_verified(self) -> "Verification":
        if self.status == "verified" and not self.excerpt:
            raise ValueError("a verified entry needs the excerpt of the source text that states it")
        if self.status != "verified" and not (self.note or self.excerpt):
            raise ValueError(f"say why in a note: what was checked and what was (not) found ({self.status})")
        return self


class Institution(BaseModel):
    """The university (or college) a fact is about, so coverage can tell a named institution it covers."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=3)
    aliases: list[str] = Field(default_factory=list)


class _Entry(BaseModel):
    """What facts and guidance share: identity, place, topic, the statement, its source and its dates."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=120)
    destination: str
    topic: str
    statement: str = Field(min_length=10, max_length=2000)
    entities: list[Entity] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    source_url: HttpUrl
    source_title: str = Field(min_length=3)
    as_of: dt.date
    review_after: dt.date
    verification: Verification | None = None
    # per entry kind: field -> (the values it may take, what to call the field, which values to use instead)
    _allowed: ClassVar[dict[str, tuple[Collection[str], str, str]]] = {}

    @field_validator("destination", "topic")
    @classmethod
    def _known(cls, v: str, info: ValidationInfo) -> str:
        allowed, what, instead = cls._allowed[info.field_name]
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; {instead}")
        return v

    @field_validator("source_url")
    @classmethod
    def _https(cls, v: HttpUrl) -> HttpUrl:
        if v.scheme != "https":
            raise ValueError("source_url must be an https URL of an official page")
        return v

    @model_validator(mode="after")
    def _dates(self):
        if self.review_after <= self.as_of:
            raise ValueError("review_after must be later than as_of")
        return self

    @property
    def country(self) -> str:
        return DESTINATIONS.get(self.destination, "any destination")

    @property
    def is_verified(self) -> bool:
        """True when the statement was found in the text of its source page."""
        return self.verification is not None and self.verification.status == "verified"


class Fact(_Entry):
    kind: Literal["fact"] = KIND_FACT
    values: list[Value] = Field(default_factory=list)
    institution: Institution | None = None

    _allowed: ClassVar[dict[str, tuple[Collection[str], str, str]]] = {
        "destination": (DESTINATIONS, "destination", f"use an ISO code from {sorted(DESTINATIONS)}"),
        "topic": (TOPICS, "topic", f"use one of {', '.join(TOPICS)}"),
    }

    @property
    def policy_sensitive(self) -> bool:
        return self.topic in POLICY_SENSITIVE

    def search_text(self) -> str:
        """What retrieval indexes: the statement plus names and keywords."""
        names = " ".join(e.name + " " + " ".join(e.aliases) for e in self.entities)
        inst = f"{self.institution.name} {' '.join(self.institution.aliases)} " if self.institution else ""
        return (f"{self.country} {inst}{self.topic.replace('_', ' ')}: {self.statement} {names} "
                f"{' '.join(self.keywords)}")


class Guidance(_Entry):
    """Sourced advice: a summary ``statement``, then ``steps`` to take and what to ``watch_out`` for."""

    kind: Literal["guidance"] = KIND_GUIDANCE
    title: str = Field(min_length=5, max_length=160)
    audience: list[str] = Field(default_factory=lambda: [ANY], min_length=1)
    steps: list[str] = Field(default_factory=list)
    watch_out: list[str] = Field(default_factory=list)

    _allowed: ClassVar[dict[str, tuple[Collection[str], str, str]]] = {
        "destination": ({ANY, *DESTINATIONS}, "destination",
                        f"use {ANY!r} or an ISO code from {sorted(DESTINATIONS)}"),
        "topic": ({*GUIDANCE_TOPICS, *TOPICS}, "guidance topic",
                  f"use one of {', '.join(GUIDANCE_TOPICS)} (or a fact topic)"),
    }

    @field_validator("audience")
    @classmethod
    def _known_audience(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in AUDIENCES]
        if bad:
            raise ValueError(f"unknown audience {', '.join(map(repr, bad))}; use {', '.join(AUDIENCES)}")
        return v

    @field_validator("steps", "watch_out")
    @classmethod
    def _non_empty_items(cls, v: list[str]) -> list[str]:
        if any(len(x.strip()) < 5 for x in v):
            raise ValueError("every item must be a sentence (5 characters or more)")
        return v

    @model_validator(mode="after")
    def _has_advice(self) -> "Guidance":
        if not self.steps and not self.watch_out:
            raise ValueError("guidance needs at least one of steps or watch_out")
        return self

    @property
    def values(self) -> list[Value]:
        """Guidance states no checkable quantity: the gate and the audit never correct against it."""
        return []

    @property
    def institution(self) -> None:
        return None

    @property
    def policy_sensitive(self) -> bool:
        return self.topic in POLICY_SENSITIVE or self.topic in GUIDANCE_POLICY_SENSITIVE

    def search_text(self) -> str:
        """Title, statement, steps and cautions, names and keywords (country only when it is specific)."""
        where = f"{self.country} " if self.destination != ANY else ""
        names = " ".join(e.name + " " + " ".join(e.aliases) for e in self.entities)
        return (f"{where}{self.topic.replace('_', ' ')}: {self.title}. {self.statement} {' '.join(self.steps)} "
                f"{' '.join(self.watch_out)} {names} {' '.join(self.keywords)}")


Entry = Fact | Guidance
