"""The claim audit: does an answer say only what the knowledge base supports?

Each claim found by :mod:`.claims` is checked against facts of the destination it is about:

* ``supported``     — a fact gives the same value (from its structured ``values`` or written in its statement);
* ``contradicted``  — the fact most relevant to the claim's sentence gives a different value of the same kind
  of quantity (same test, same currency, same unit), or a named visa belongs to another country;
* ``unsupported``   — nothing in scope covers it (an invented scholarship, a figure the KB does not hold).

Any contradicted or unsupported claim makes the answer an error: a grounded assistant must not state
specifics it cannot source. Alongside, the audit flags template scaffolding left in the text ("Clear
statement:", "[University Name]") and policy-sensitive answers that never send the student to the official
source — both failure modes of the published StudyAbroadGPT training data.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

import numpy as np

from .claims import Claim, extract_claims, plausible_score, name_tokens, numbers_in, sentence_bounds
from .geo import destination_mentions, detect_destinations
from .search import tokenize
from .schema import Fact, Value
from .store import KnowledgeBase, describe_value, load_kb

# ------------------------------------------------------------------------------------------------- caveats

_CAVEAT = re.compile(
    r"official\s+(?:\w+\s+){0,2}(?:website|site|source|page|guidance|information|portal)|"
    r"(?:government|immigration)\s+(?:website|site|page|guidance)|"
    r"\bcheck\s+(?:the\s+)?(?:latest|current|official|up-to-date|with|directly)|"
    r"\b(?:verify|confirm)\s+(?:\w+\s+){0,3}(?:with|on|at|against|before)\b|"
    r"\bdouble-check|\bsubject\s+to\s+change|"
    r"\b(?:rules|requirements|fees|figures|amounts|policies|thresholds|limits|conditions)\s+(?:\w+\s+){0,2}"
    r"(?:can|may|might|often|do|does|could)\s+change|"
    r"\b(?:regulated|registered|licensed|qualified)\s+(?:immigration\s+)?(?:adviser|advisor|consultant|lawyer)|"
    r"\binternational\s+(?:student\s+)?(?:office|advis\w+|support)|"
    r"gov\.uk|canada\.ca|homeaffairs\.gov\.au|uscis\.gov|travel\.state\.gov|studyinthestates|irishimmigration\.ie|"
    r"ind\.nl|immigration\.govt\.nz|make-it-in-germany|auswaertiges-amt",
    re.IGNORECASE)

_POLICY = re.compile(
    r"\b(?:visas?|study\s+permit|residence\s+permit|work\s+permit|immigration|(?:F|J|M)-1|Stamp\s+\d|subclass\s+\d+|"
    r"graduate\s+route|post-study\s+work|PGWP|OPT|CPT|work(?:ing)?\s+(?:rights|hours|limit|while\s+studying)|"
    r"hours\s+(?:per|a)\s+(?:week|fortnight)|part-time\s+(?:work|job)|health\s+(?:insurance|cover|surcharge)|"
    r"IHS|OSHC|proof\s+of\s+(?:funds|finances|financial)|financial\s+requirement|maintenance\s+funds|"
    r"blocked\s+account|bank\s+statements?|dependants?|dependents?|spouse|biometric|BRP|eVisa|registration\s+with|"
    r"Anmeldung|IRP)\b", re.IGNORECASE)


def has_caveat(text: str) -> bool:
    """Does the answer point the student to the official source or advise checking it?"""
    return bool(_CAVEAT.search(text))


def is_policy_sensitive(text: str) -> bool:
    """Does the text touch rules that change without notice (visas, work rights, funds, health cover…)?"""
    return bool(_POLICY.search(text))


# ------------------------------------------------------------------------------------------------- scaffolding

_SCAFFOLD_LABELS = re.compile(
    r"^[ \t]*(?:[-*][ \t]*|#{1,6}[ \t]*)?\**[ \t]*(Clear statement|Reasoning explanation|Supporting evidence|"
    r"Specific example|"
    r"Practical implication|Acknowledge the question|Preview(?: \d+(?:-\d+)?)? key points|Because of|"
    r"This leads to|Cause|Effect|Building on (?:our|the) previous discussion|Introduction|Main Content|"
    r"Conclusion and next steps|Key takeaway|Call to action)[ \t]*:?\**[ \t]*:?", re.IGNORECASE | re.MULTILINE)
_PLACEHOLDER = re.compile(r"\[(?!\d)(?:[A-Z][\w' ]{2,40}|insert[^\]]{0,40}|your [^\]]{1,40}|TBD|XX+)\](?!\()|"
                          r"\{\{?\s*[a-z_]{2,30}\s*\}?\}|<(?:insert|your|university|name)[^>]{0,30}>|\bXX+\b")
# ("[Title](url)" is a markdown link, not a placeholder.)
# Labels that are scaffolding only when they open a line as a bolded label, not as a normal heading.
_LABEL_ONLY_AS_LABEL = {"introduction", "main content"}


def find_scaffolding(text: str) -> list[str]:
    """Template labels and unfilled placeholders left in an answer, as they appear."""
    found: list[str] = []
    for m in _SCAFFOLD_LABELS.finditer(text):
        label = m.group(1)
        eol = text.find("\n", m.end())
        line = text[m.start():eol if eol >= 0 else len(text)]
        if label.lower() in _LABEL_ONLY_AS_LABEL and not re.search(r"#\s*" + re.escape(label) + r"\s*$", line):
            continue
        if label.lower().startswith("building on") and "**" not in line:
            continue
        found.append(label)
    found += [m.group(0) for m in _PLACEHOLDER.finditer(text)]
    return found


# ------------------------------------------------------------------------------------------------- results


@dataclass
class AuditResult:
    answer: str
    question: str
    claims: list[Claim]
    scaffolding: list[str]
    policy_sensitive: bool
    caveat: bool
    destination: str | None = None
    id: str | None = None

    @property
    def supported(self) -> list[Claim]:
        return [c for c in self.claims if c.status == "supported"]

    @property
    def contradicted(self) -> list[Claim]:
        return [c for c in self.claims if c.status == "contradicted"]

    @property
    def unsupported(self) -> list[Claim]:
        return [c for c in self.claims if c.status == "unsupported"]

    @property
    def has_error(self) -> bool:
        """Any contradicted or unsupported specific claim (every extracted claim is a specific one)."""
        return any(c.status != "supported" for c in self.claims)

    @property
    def missing_caveat(self) -> bool:
        return self.policy_sensitive and not self.caveat

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "destination": self.destination, "has_error": self.has_error,
            "n_claims": len(self.claims), "n_supported": len(self.supported),
            "n_contradicted": len(self.contradicted), "n_unsupported": len(self.unsupported),
            "policy_sensitive": self.policy_sensitive, "has_caveat": self.caveat,
            "missing_caveat": self.missing_caveat, "scaffolding": self.scaffolding,
            "claims": [c.to_dict() for c in self.claims],
        }


# ------------------------------------------------------------------------------------------------- matching


def _close(a: float, b: float, rel: float = 1e-6) -> bool:
    """Equal up to float noise: a grounded answer quotes the sourced figure, so £1,490 is not £1,483."""
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


_MONTH_DAYS = {"hours": None, "days": 1 / 30.44, "weeks": 7 / 30.44, "months": 1.0, "years": 12.0}


def _in_months(amount: float, unit: str) -> float | None:
    factor = _MONTH_DAYS.get(unit if unit.endswith("s") else unit + "s")
    return None if factor is None else amount * factor


_DOLLARS = {"USD", "CAD", "AUD", "NZD", "SGD"}
_LOCAL_DOLLAR = {"US": "USD", "CA": "CAD", "AU": "AUD", "NZ": "NZD", "SG": "SGD"}


@dataclass(frozen=True)
class Checkable:
    """A value a fact vouches for, normalised to the claim kinds (structured or read from its statement)."""

    kind: str
    value: tuple
    label: str


def _from_value(v: Value) -> Checkable | None:
    if v.kind == "amount":
        return Checkable("money", (float(v.amount), (v.currency or "").upper(), _period(v.period)), describe_value(v))
    if v.kind == "score":
        from .claims import canonical_test

        return Checkable("score", (canonical_test(v.test), float(v.min_score)), describe_value(v))
    if v.kind == "duration":
        unit = v.unit.lower().rstrip("s") + "s"
        return Checkable("duration", (float(v.amount), unit, (v.per or None)), describe_value(v))
    if v.kind == "percentage":
        return Checkable("percentage", (float(v.amount),), describe_value(v))
    if v.kind == "count":
        return Checkable("count", (float(v.amount),), describe_value(v))
    if v.kind == "date":
        m = re.match(r"^(?:(\d{4})|-)-(\d{2})-(\d{2})$", v.date.strip())
        if m:
            year = int(m.group(1)) if m.group(1) else None
            return Checkable("date", (int(m.group(2)), int(m.group(3)), year), describe_value(v))
    return None


def _period(p: str | None) -> str | None:
    if p is None:
        return None
    p = p.lower().rstrip("s")
    return {"annum": "year", "annual": "year", "yearly": "year", "monthly": "month", "weekly": "week"}.get(p, p)


def _from_claim(c: Claim) -> Checkable:
    v = c.value
    if c.kind == "money":
        return Checkable("money", (float(v["amount"]), v["currency"], v["period"]), c.text)
    if c.kind == "score":
        return Checkable("score", (v["test"], float(v["score"])), c.text)
    if c.kind == "duration":
        return Checkable("duration", (float(v["amount"]), v["unit"], v["per"]), c.text)
    if c.kind == "percentage":
        return Checkable("percentage", (float(v["amount"]),), c.text)
    if c.kind == "date":
        return Checkable("date", (v["month"], v["day"], v["year"]), c.text)
    return Checkable(c.kind, (), c.text)


def _compatible(claim: Checkable, fact: Checkable, destination: str | None) -> bool:
    """Do the two measure the same kind of quantity (so a different number is a contradiction)?"""
    if claim.kind == "money" and fact.kind == "money":
        c_cur, f_cur = claim.value[1], fact.value[1]
        if c_cur == "$":
            ok = f_cur in _DOLLARS and (destination is None or _LOCAL_DOLLAR.get(destination, f_cur) == f_cur)
        else:
            ok = c_cur == f_cur
        return ok and (claim.value[2] is None or fact.value[2] is None or claim.value[2] == fact.value[2])
    if claim.kind == "score" and fact.kind == "score":
        return claim.value[0] == fact.value[0]
    if claim.kind == "duration" and fact.kind == "duration":
        c_amt, c_unit, c_per = claim.value
        f_amt, f_unit, f_per = fact.value
        if (c_unit == "hours") != (f_unit == "hours"):
            return False
        return c_per == f_per if c_unit == "hours" else (c_per is None) == (f_per is None)
    if claim.kind == "percentage" and fact.kind == "percentage":
        return True
    if claim.kind == "date" and fact.kind == "date":
        return True
    return False


def _matches(claim: Checkable, fact: Checkable, destination: str | None) -> bool:
    if claim.kind == "duration" and fact.kind == "count":
        return _close(claim.value[0], fact.value[0])  # "140 full days" is stored as a count of days
    if not _compatible(claim, fact, destination):
        return False
    if claim.kind in ("money", "score", "percentage"):
        return _close(claim.value[0], fact.value[0]) if claim.kind != "score" else \
            _close(claim.value[1], fact.value[1], 1e-6)
    if claim.kind == "duration":
        (c_amt, c_unit, _), (f_amt, f_unit, _) = claim.value, fact.value
        if c_unit == "hours" or c_unit == f_unit:
            return _close(c_amt, f_amt)
        # "2 years" is "24 months"; across days and months allow the calendar's slack ("90 days" ~ "3 months")
        return _close(_in_months(c_amt, c_unit), _in_months(f_amt, f_unit), 0.02)
    if claim.kind == "date":
        (cm, cd, cy), (fm, fd, fy) = claim.value, fact.value
        return cm == fm and cd == fd and (cy is None or fy is None or cy == fy)
    return False


@lru_cache(maxsize=4096)
def _statement_checkables(statement: str) -> tuple[Checkable, ...]:
    """Figures a fact's own sentence states (its statement is sourced, so they count as support)."""
    return tuple(_from_claim(c) for c in extract_claims(statement) if c.kind != "entity")


def fact_checkables(fact: Fact) -> list[Checkable]:
    out = [c for c in (_from_value(v) for v in fact.values) if c is not None]
    return out + list(_statement_checkables(fact.statement))


def _fact_names(fact: Fact, level: int = 0) -> list[frozenset[str]]:
    """Names a fact vouches for: its entities and aliases, and any name its statement or source title spells out."""
    names = [name_tokens(n, level) for e in fact.entities for n in [e.name, *e.aliases]]
    names += [name_tokens(v, level) for text in (fact.statement, fact.source_title) for v in _statement_names(text)]
    return [n for n in names if n]


def _same_name(mention: frozenset[str], known: frozenset[str]) -> bool:
    """The mention's words all belong to the known name and make up at least half of it.

    "Fulbright Program" is the "Fulbright Foreign Student Program"; "Education Scholarship" is not "World
    Education Services".
    """
    return mention <= known and 2 * len(mention) >= len(known)


@lru_cache(maxsize=4096)
def _statement_names(statement: str) -> tuple[str, ...]:
    return tuple(v for c in extract_claims(statement) if c.kind == "entity" for v in c.value["variants"])


# ------------------------------------------------------------------------------------------------- the auditor


class Auditor:
    """Audit answers against a knowledge base.

    Claims are ranked against facts lexically (BM25 over the claim's sentence) by default: a claim sentence shares
    its key words with the fact it restates, and the audit then runs at hundreds of answers a second with no
    encoder. ``dense=True`` (with a :class:`~.search.Retriever`) ranks with the full hybrid retrieval instead, one
    batched embedding call per answer: better "expected" values for loosely paraphrased claims, ~100x slower.
    Support itself never depends on the ranking — every fact of the claim's destination is checked.
    """

    _default: "Auditor | None" = None
    _lock = threading.Lock()

    def __init__(self, kb: KnowledgeBase, retriever=None, dense: bool = False, support_top: int = 3):
        from rank_bm25 import BM25Okapi

        self.support_top = support_top  # KB-wide audits: a figure must match one of the top-ranked facts
        self.kb = kb
        self.retriever = retriever
        self.dense = dense and retriever is not None
        self._checkables = {f.id: fact_checkables(f) for f in kb.facts}
        self._names: dict[tuple[str, int], list[frozenset[str]]] = {}
        self._bm25 = retriever._bm25 if retriever is not None else BM25Okapi(
            [tokenize(f.search_text()) for f in kb.facts])

    @classmethod
    def default(cls) -> "Auditor":
        """The shipped KB's auditor (lexical ranking: no encoder is loaded), built once per process."""
        with cls._lock:
            if cls._default is None:
                cls._default = cls(load_kb())
            return cls._default

    # ----------------------------------------------------------------------------------------- public

    def audit_answer(self, answer: str, question: str = "", facts: list[Fact] | None = None,
                     id: str | None = None) -> AuditResult:
        """Audit one answer. With ``facts``, only those facts count as support (what the server retrieved)."""
        claims = extract_claims(answer, skip_numbers=numbers_in(question) if question else None)
        context_dest = _context_destination(question, answer, facts)
        for c in claims:
            c.destination = _claim_destination(answer, c, context_dest)
        if claims:
            pools = self._pools(claims, facts)
            for c, pool in zip(claims, pools):
                self._check(c, pool, None if facts is not None else self.support_top)
        return AuditResult(answer=answer, question=question, claims=claims, scaffolding=find_scaffolding(answer),
                           policy_sensitive=is_policy_sensitive(answer) or is_policy_sensitive(question),
                           caveat=has_caveat(answer), destination=context_dest, id=id)

    def audit_many(self, items: Iterable[tuple[str, str]]) -> list[AuditResult]:
        return [self.audit_answer(answer, question) for question, answer in items]

    # ----------------------------------------------------------------------------------------- internals

    def _pools(self, claims: list[Claim], facts: list[Fact] | None) -> list[list[Fact]]:
        """Facts each claim is checked against, most relevant first.

        Given facts: those of the claim's destination (all of them when none is). Otherwise: the destination's
        facts, ranked by retrieval on the claim's sentence (one batched embedding call per answer).
        """
        if facts is not None:
            pools = []
            for c in claims:
                same = [f for f in facts if f.destination == c.destination] if c.destination else []
                pools.append(_rank_by_overlap(c.sentence or c.text, same or list(facts)))
            return pools
        ranked = self._rank(claims)
        pools = []
        for c, order in zip(claims, ranked):
            if c.destination:
                pools.append([f for f in order if f.destination == c.destination])
            else:
                pools.append(order)
        return pools

    def _rank(self, claims: list[Claim]) -> list[list[Fact]]:
        sentences = [c.sentence or c.text for c in claims]
        unique = list(dict.fromkeys(sentences))
        if self.dense:
            from .search import embed

            scores = [self.retriever.fused_scores(s, query_vec=v) for s, v in zip(unique, embed(unique))]
        else:
            scores = [self._bm25.get_scores(tokenize(s)) for s in unique]
        ranking = {s: [self.kb.facts[i] for i in np.argsort(-np.asarray(sc), kind="stable")]
                   for s, sc in zip(unique, scores)}
        return [ranking[s] for s in sentences]

    def _check(self, c: Claim, pool: list[Fact], support_top: int | None = None) -> None:
        if c.kind == "entity":
            self._check_entity(c, pool)
            return
        cc = _from_claim(c)
        if c.kind == "score":
            ok, scale = plausible_score(c.value["test"], c.value["score"])
            if not ok:  # "TOEFL 6.5": a band from another test's scale
                c.status, c.fact_id, c.expected = "contradicted", None, scale
                return
        # Across the whole KB a figure must come from a fact about the same thing, not merely from some fact
        # of the country: "3 years" is not supported by an unrelated rule that also says "3 years".
        candidates = pool if support_top is None else pool[:support_top]
        for fact in candidates:
            if any(_matches(cc, fc, c.destination) for fc in self._checkables_of(fact)):
                c.status, c.fact_id, c.expected = "supported", fact.id, None
                return
        if c.destination is None:
            return  # no country to hold the figure to: unsupported, not contradicted
        for fact in pool[:5]:
            rivals = [fc for fc in self._checkables_of(fact) if _compatible(cc, fc, c.destination)]
            if rivals:
                best = min(rivals, key=lambda fc: _distance(cc, fc))
                c.status, c.fact_id, c.expected = "contradicted", fact.id, best.label
                return

    def _check_entity(self, c: Claim, pool: list[Fact]) -> None:
        level = c.value.get("level", 0)
        variants = [name_tokens(v, level) for v in c.value.get("variants", [c.value["name"]])]
        variants = [v for v in variants if v]

        def known(fact: Fact) -> bool:
            return any(_same_name(v, k) for v in variants for k in self._names_of(fact, level))

        for fact in pool:
            if known(fact):
                c.status, c.fact_id = "supported", fact.id
                return
        elsewhere = [f for f in self.kb.facts if known(f)]
        if not elsewhere:
            return  # a name the KB has never heard of: unsupported
        # A real scheme of another country. Fine when its own sentence places it there ("Ireland's Free Fees
        # Initiative", "the UK's Chevening"); a contradiction when the answer attaches it to another country.
        # (the name itself is left out: "Fulbright" or "Stamp 2" would otherwise always place itself)
        named = {code for _, code in destination_mentions(c.sentence.replace(c.text, " "))}
        possessive = re.match(r"^(?:the\s+)?([A-Z][\w .]*?)['’]s\s", c.text)  # "Ireland's Free Fees Initiative"
        if possessive:
            named |= set(detect_destinations(possessive.group(1)))
        own = {f.destination for f in elsewhere}
        if named & own or c.destination is None:
            c.status, c.fact_id = "supported", elsewhere[0].id
            return
        fact = elsewhere[0]
        c.status, c.fact_id = "contradicted", fact.id
        c.expected = f"{c.value['name']} belongs to {fact.country}, not {_country(c.destination)}"

    def _checkables_of(self, fact: Fact) -> list[Checkable]:
        got = self._checkables.get(fact.id)
        if got is None or fact is not self.kb.by_id.get(fact.id):
            got = fact_checkables(fact)  # a fact from outside this KB (the caller's own list)
        return got

    def _names_of(self, fact: Fact, level: int = 0) -> list[frozenset[str]]:
        if fact is not self.kb.by_id.get(fact.id):
            return _fact_names(fact, level)  # a fact from outside this KB (the caller's own list)
        key = (fact.id, level)
        if key not in self._names:
            self._names[key] = _fact_names(fact, level)
        return self._names[key]


def _rank_by_overlap(sentence: str, facts: list[Fact]) -> list[Fact]:
    """Facts ordered by how many of the sentence's words they share (stable: ties keep the given order)."""
    words = set(tokenize(sentence))
    return sorted(facts, key=lambda f: -len(words & _fact_words(f)))


@lru_cache(maxsize=8192)
def _words_of(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


def _fact_words(fact: Fact) -> frozenset[str]:
    return _words_of(fact.search_text() + " " + " ".join(v.key.replace(".", " ").replace("_", " ")
                                                         for v in fact.values))


def _distance(a: Checkable, b: Checkable) -> float:
    try:
        x = a.value[1] if a.kind == "score" else a.value[0]
        y = b.value[1] if b.kind == "score" else b.value[0]
        return abs(float(x) - float(y))
    except (TypeError, ValueError, IndexError):
        return 0.0


def _country(code: str) -> str:
    from .schema import DESTINATIONS

    return DESTINATIONS.get(code, code)


def _context_destination(question: str, answer: str, facts: list[Fact] | None) -> str | None:
    if facts:
        dests = {f.destination for f in facts}
        if len(dests) == 1:
            return next(iter(dests))
    for text in (question, answer):
        found = detect_destinations(text)
        if found:
            return found[0]
    return None


def _claim_destination(answer: str, claim: Claim, fallback: str | None) -> str | None:
    """The country named nearest to the claim in its own sentence (the claim's own words aside), else the answer's.

    Nearest rather than most-mentioned: in "in Australia you can work 48 hours per fortnight; in Canada…" the
    48 hours belongs to Australia.
    """
    s0, s1 = sentence_bounds(answer, claim.span[0])
    a, b = claim.span
    before = [code for _, code in destination_mentions(answer[s0:a])]
    if before:
        return before[-1]
    after = [code for _, code in destination_mentions(answer[b:s1])]
    return after[0] if after else fallback


def audit_texts(answers: list[str], questions: list[str] | None = None, kb: KnowledgeBase | None = None
                ) -> list[AuditResult]:
    """Convenience: audit a list of answers against ``kb`` (default: shipped KB, no retrieval)."""
    auditor = Auditor(kb or load_kb())
    questions = questions or [""] * len(answers)
    return [auditor.audit_answer(a, q) for a, q in zip(answers, questions)]


__all__ = ["Auditor", "AuditResult", "Claim", "has_caveat", "is_policy_sensitive", "find_scaffolding",
           "audit_texts"]
