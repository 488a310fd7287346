"""The claim audit: does an answer say only what the knowledge base supports?

Each claim found by :mod:`.claims` is checked against facts of the destination it is about:

* ``supported``     — a fact gives the same value (from its structured ``values`` or written in its statement);
* ``contradicted``  — the fact most relevant to the claim's sentence gives a different value of the same kind
  of quantity (same test, same currency, same unit), or a named visa belongs to another country;
* ``unsupported``   — nothing in scope covers it (an invented scholarship, a figure the KB does not hold).

Any contradicted or unsupported claim makes the answer an error: a grounded assistant must not state
specifics it cannot source. Alongside, the audit flags template scaffolding left in the text
(:mod:`.scaffolding`) and policy-sensitive answers that never send the student to the official source
(:mod:`.caveats`) — both failure modes of the published StudyAbroadGPT training data. Whether two values agree
is :mod:`.matching`'s business; this module decides which facts each claim is held to.
"""
from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .caveats import has_caveat, is_policy_sensitive
from .claims import Claim, ClaimKind, ClaimStatus, SentenceIndex, extract_claims, name_tokens, numbers_in, \
    plausible_score
from .geo import destination_mentions, destination_spans, detect_destinations, is_origin_mention
from .matching import Checkable, compatible, distance, fact_checkables, fact_names, from_claim, matches, same_name
from .scaffolding import find_scaffolding
from .schema import ANY, Fact
from .search import tokenize
from .store import KnowledgeBase, load_kb

# Longer answers are audited up to here and say so (``AuditResult.truncated``). Served answers are at most
# 1,024 tokens (a few thousand characters); 20,000 characters audit in well under a second even when written to
# be slow (tests/kb/test_audit_limits.py), so a 200k-character row in a file cannot stall `sagpt audit`.
MAX_AUDIT_CHARS = 20_000

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
    answer_chars: int | None = None   # set when the answer was longer than the audit reads (see ``truncated``)

    @property
    def truncated(self) -> bool:
        """Only the first ``MAX_AUDIT_CHARS`` (or the Auditor's ``max_chars``) of the answer were audited."""
        return self.answer_chars is not None

    @property
    def supported(self) -> list[Claim]:
        return [c for c in self.claims if c.status == ClaimStatus.SUPPORTED]

    @property
    def contradicted(self) -> list[Claim]:
        return [c for c in self.claims if c.status == ClaimStatus.CONTRADICTED]

    @property
    def unsupported(self) -> list[Claim]:
        return [c for c in self.claims if c.status == ClaimStatus.UNSUPPORTED]

    @property
    def has_error(self) -> bool:
        """Any contradicted or unsupported specific claim (every extracted claim is a specific one)."""
        return any(c.status != ClaimStatus.SUPPORTED for c in self.claims)

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
            **({"truncated": True, "answer_chars": self.answer_chars, "audited_chars": len(self.answer)}
               if self.truncated else {}),
        }


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

    def __init__(self, kb: KnowledgeBase, retriever=None, dense: bool = False, support_top: int = 3,
                 max_chars: int = MAX_AUDIT_CHARS):
        from rank_bm25 import BM25Okapi

        self.max_chars = max_chars
        self.support_top = support_top  # KB-wide audits: a figure must match one of the top-ranked facts
        self.kb = kb
        self.retriever = retriever
        self.dense = dense and retriever is not None
        self._checkables = {f.id: fact_checkables(f) for f in kb.facts}
        self._names: dict[tuple[str, int], list[frozenset[str]]] = {}
        self._name_index: dict[int, dict[str, set[int]]] = {}  # level -> word -> positions of facts naming it
        if retriever is not None:
            self._bm25_scores = retriever.bm25_scores  # the retriever's index: one BM25 over the KB, not two
        else:
            bm25 = BM25Okapi([tokenize(f.search_text()) for f in kb.facts])
            self._bm25_scores = lambda query: np.asarray(bm25.get_scores(tokenize(query)), dtype=np.float64)

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
        """Audit one answer. With ``facts``, only those facts count as support (what the server retrieved).

        An answer longer than ``max_chars`` is audited up to the last blank before that point (so no figure is
        cut in two) and the result says so; a question that long is read up to ``max_chars`` too.
        """
        full_chars = len(answer)
        answer, question = _clip(answer, self.max_chars), _clip(question, self.max_chars)
        claims = extract_claims(answer, skip_numbers=numbers_in(question) if question else None)
        places = _Places(answer)
        context_dest = _context_destination(question, places, facts)
        for c in claims:
            c.destination = places.nearest(c, context_dest)
        if claims:
            pools = self._pools(claims, facts)
            named: dict[tuple[str, str], set[str]] = {}
            for c, pool in zip(claims, pools):
                self._check(c, pool, None if facts is not None else self.support_top, named)
        return AuditResult(answer=answer, question=question, claims=claims, scaffolding=find_scaffolding(answer),
                           policy_sensitive=is_policy_sensitive(answer) or is_policy_sensitive(question),
                           caveat=has_caveat(answer), destination=context_dest, id=id,
                           answer_chars=full_chars if len(answer) < full_chars else None)

    # ----------------------------------------------------------------------------------------- internals

    def _pools(self, claims: list[Claim], facts: list[Fact] | None) -> list[list[Fact]]:
        """Facts each claim is checked against, most relevant first.

        Given facts: those of the claim's destination (all of them when none is). Otherwise: the destination's
        facts, ranked by retrieval on the claim's sentence (one batched embedding call per answer).
        """
        if facts is not None:
            pools = []
            words: dict[str, set[str]] = {}  # tokenised once per sentence, not once per claim in it
            for c in claims:
                # guidance for every destination ("research 12 to 18 months ahead") is in scope wherever the claim is
                same = ([f for f in facts if f.destination in (c.destination, ANY)] if c.destination else [])
                sentence = c.sentence or c.text
                if sentence not in words:
                    words[sentence] = set(tokenize(sentence))
                pools.append(_rank_by_overlap(words[sentence], same or list(facts)))
            return pools
        ranked = self._rank(claims)
        pools = []
        mine: dict[tuple[int, str], list[Fact]] = {}  # one filtered ranking per sentence and destination
        for c, order in zip(claims, ranked):
            if c.destination:
                key = (id(order), c.destination)
                if key not in mine:
                    mine[key] = [f for f in order if f.destination == c.destination]
                pools.append(mine[key])
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
            scores = [self._lexical_scores(s) for s in unique]
        # a retriever's scores cover all its entries (facts, then guidance); only facts can support a claim
        pool = self.retriever.entries if self.retriever is not None else self.kb.facts
        ranking = {s: [pool[i] for i in np.argsort(-np.asarray(sc), kind="stable") if pool[i].kind == "fact"]
                   for s, sc in zip(unique, scores)}
        return [ranking[s] for s in sentences]

    def _lexical_scores(self, sentence: str) -> np.ndarray:
        """BM25 of every fact for the sentence.

        BM25 adds one term per query word, so a long sentence is scored word type by word type, each weighted by
        its count: the same sum, but a 20,000-character run of one repeated figure costs one lookup, not 6,666.
        Ordinary sentences take the plain call (same floating-point sums, same ties).
        """
        words = tokenize(sentence)
        if len(words) <= _LONG_SENTENCE_WORDS:
            return self._bm25_scores(sentence)
        total = None
        for word, count in Counter(words).items():
            scores = count * self._bm25_scores(word)
            total = scores if total is None else total + scores
        return total

    def _check(self, c: Claim, pool: list[Fact], support_top: int | None = None,
               named: dict[tuple[str, str], set[str]] | None = None) -> None:
        if c.kind == ClaimKind.ENTITY:
            self._check_entity(c, pool, {} if named is None else named)
            return
        cc = from_claim(c)
        if c.kind == ClaimKind.SCORE:
            ok, scale = plausible_score(c.value["test"], c.value["score"])
            if not ok:  # "TOEFL 6.5": a band from another test's scale
                c.status, c.fact_id, c.expected = ClaimStatus.CONTRADICTED, None, scale
                return
        # Across the whole KB a figure must come from a fact about the same thing, not merely from some fact
        # of the country: "3 years" is not supported by an unrelated rule that also says "3 years".
        candidates = pool if support_top is None else pool[:support_top]
        for fact in candidates:
            if any(matches(cc, fc, c.destination) for fc in self._checkables_of(fact)):
                c.status, c.fact_id, c.expected = ClaimStatus.SUPPORTED, fact.id, None
                return
        if c.destination is None:
            return  # no country to hold the figure to: unsupported, not contradicted
        for fact in pool[:5]:
            rivals = [fc for fc in self._checkables_of(fact) if compatible(cc, fc, c.destination)]
            if rivals and fact.kind != "fact":
                # The most relevant entry is advice: the figure is about what the advice covers, so a rule
                # further down that happens to hold the same unit is the wrong slot ("research 12 to 25 months
                # ahead" is no D-4 insurance waiting period of six months). Advice never contradicts (the gate
                # would correct against it): the claim stays unsupported.
                return
            if rivals:
                best = min(rivals, key=lambda fc: distance(cc, fc))
                c.status, c.fact_id, c.expected = ClaimStatus.CONTRADICTED, fact.id, best.label
                return

    def _check_entity(self, c: Claim, pool: list[Fact], named_in: dict[tuple[str, str], set[str]]) -> None:
        level = c.value.get("level", 0)
        variants = [name_tokens(v, level) for v in c.value.get("variants", [c.value["name"]])]
        variants = [v for v in variants if v]

        def known(fact: Fact) -> bool:
            return any(same_name(v, k) for v in variants for k in self._names_of(fact, level))

        for fact in pool:
            if known(fact):
                c.status, c.fact_id = ClaimStatus.SUPPORTED, fact.id
                return
        elsewhere = self._known_anywhere(variants, level)
        if not elsewhere:
            return  # a name the KB has never heard of: unsupported
        # A real scheme of another country. Fine when its own sentence places it there ("Ireland's Free Fees
        # Initiative", "the UK's Chevening"); a contradiction when the answer attaches it to another country.
        # (the name itself is left out: "Fulbright" or "Stamp 2" would otherwise always place itself)
        key = (c.sentence, c.text)  # one scan per sentence and name: a long sentence repeating a name stays linear
        if key not in named_in:
            named_in[key] = {code for _, code in destination_mentions(c.sentence.replace(c.text, " "))}
        named = set(named_in[key])
        possessive = re.match(r"^(?:the\s+)?([A-Z][\w .]*?)['’]s\s", c.text)  # "Ireland's Free Fees Initiative"
        if possessive:
            named |= set(detect_destinations(possessive.group(1)))
        own = {f.destination for f in elsewhere}
        if named & own or c.destination is None:
            c.status, c.fact_id = ClaimStatus.SUPPORTED, elsewhere[0].id
            return
        fact = elsewhere[0]
        c.status, c.fact_id = ClaimStatus.CONTRADICTED, fact.id
        c.expected = f"{c.value['name']} belongs to {fact.country}, not {_country(c.destination)}"

    def _known_anywhere(self, variants: list[frozenset[str]], level: int) -> list[Fact]:
        """The KB's facts (in KB order) that vouch for one of the name's variants.

        Looked up by word (a known name must contain every word of the mention), not by scanning every fact for
        every name: an answer listing hundreds of invented scholarships stays fast.
        """
        if level not in self._name_index:
            index: dict[str, set[int]] = {}
            for pos, fact in enumerate(self.kb.facts):
                for name in self._names_of(fact, level):
                    for word in name:
                        index.setdefault(word, set()).add(pos)
            self._name_index[level] = index
        index = self._name_index[level]
        hits: set[int] = set()
        for v in variants:
            word = min(v, key=lambda w: len(index.get(w, ())))  # the rarest word narrows the most
            for pos in index.get(word, ()):
                if pos not in hits and any(same_name(v, k) for k in self._names_of(self.kb.facts[pos], level)):
                    hits.add(pos)
        return [self.kb.facts[pos] for pos in sorted(hits)]

    def _checkables_of(self, fact: Fact) -> list[Checkable]:
        got = self._checkables.get(fact.id)
        if got is None or fact is not self.kb.by_id.get(fact.id):
            got = fact_checkables(fact)  # a fact from outside this KB (the caller's own list)
        return got

    def _names_of(self, fact: Fact, level: int = 0) -> list[frozenset[str]]:
        if fact is not self.kb.by_id.get(fact.id):
            return fact_names(fact, level)  # a fact from outside this KB (the caller's own list)
        key = (fact.id, level)
        if key not in self._names:
            self._names[key] = fact_names(fact, level)
        return self._names[key]


def _rank_by_overlap(words: set[str], facts: list[Fact]) -> list[Fact]:
    """Facts ordered by how many of the sentence's words they share (stable: ties keep the given order)."""
    return sorted(facts, key=lambda f: -len(words & _fact_words(f)))



@lru_cache(maxsize=8192)
def _words_of(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


def _fact_words(fact: Fact) -> frozenset[str]:
    return _words_of(fact.search_text() + " " + " ".join(v.key.replace(".", " ").replace("_", " ")
                                                         for v in fact.values))



def _country(code: str) -> str:
    from .schema import DESTINATIONS

    return DESTINATIONS.get(code, code)


def _context_destination(question: str, places: "_Places", facts: list[Fact] | None) -> str | None:
    """The destination an answer is about: its facts' one destination, else where the question asks about, else
    where the answer's rules apply.

    The student's origin is not where the answer applies: "I'm from China, when can I apply for a UK visa?"
    held the UK's "6 months" to a Chinese rule (contradicted, "30 days") once China was a covered destination
    (13 of 9,476 synthesized answers flagged KB-wide), and a follow-up answer whose only place is an
    eligibility group ("outside the EU, EEA and Switzerland") was held to Switzerland (1 more). A place read as
    an origin still counts when nothing else is named: the origin cue also fires on "a UK Student visa".
    """
    if facts:
        dests = {f.destination for f in facts}
        if len(dests) == 1:
            return next(iter(dests))
    for exclude_origins in (True, False):
        found = (detect_destinations(question, exclude_origins=exclude_origins)
                 or places.destinations(with_origins=not exclude_origins))
        if found:
            return found[0]
    return None


def _clip(text: str, max_chars: int) -> str:
    """``text`` up to ``max_chars``, cut after the last sentence or line end before it (else the last blank), so
    no figure or name is cut in two."""
    if len(text) <= max_chars:
        return text
    for ends in ((". ", "\n"), (" ", "\t")):
        cut = max(text.rfind(e, 0, max_chars) for e in ends)
        if cut >= max_chars // 2:
            return text[:cut + 1]
    return text[:max_chars]


_LONG_SENTENCE_WORDS = 256
# A country inside an eligibility group ("students from outside the EU, EEA and Switzerland pay €2,895", "non-EU/EEA
# applicants") says who a rule applies to, not where: the French fee claim was held to Switzerland's (absent) facts
# and called unsupported. The group may be listed before the country ("the EU, EEA and Switzerland").
_GROUP_BEFORE = re.compile(r"\b(?:from|outside|non-?)\s*(?:of\s+)?(?:the\s+)?"
                           r"(?:(?:EU|EEA|European Union|European Economic Area)\s*(?:,|/|and|or)?\s*)*$", re.IGNORECASE)
_WORDISH = re.compile(r"[\w-]")  # what keeps a destination cue from matching next to it
_EDGE = 64  # longer than any destination cue (the longest, "third level graduate programme", is 30)


class _Places:
    """Where one answer names destinations: found once, looked up per claim in O(log n).

    Scanning each claim's sentence again made the audit quadratic in a long sentence's length.
    """

    def __init__(self, answer: str):
        self.sentences = SentenceIndex(answer)
        # Places named as whom a rule covers (the student's origin, an eligibility group) are not where it applies.
        named = [sp for sp in destination_spans(answer) if not _GROUP_BEFORE.search(answer, max(0, sp[0] - 60), sp[0])]
        self.origins = [sp for sp in named if is_origin_mention(answer, sp[0], sp[1])]
        self.spans = [sp for sp in named if sp not in self.origins]
        self.starts = [start for start, _, _ in self.spans]

    def destinations(self, with_origins: bool = False) -> list[str]:
        """ISO codes the answer names (eligibility groups aside; origins too unless ``with_origins``), most
        named first, ties in reading order — the order ``geo.detect_destinations`` gives."""
        spans = sorted(self.spans + self.origins) if with_origins else self.spans
        counts = Counter(code for _, _, code in spans)
        first: dict[str, int] = {}
        for start, _, code in spans:
            first.setdefault(code, start)
        return sorted(counts, key=lambda c: (-counts[c], first[c]))

    def nearest(self, claim: Claim, fallback: str | None) -> str | None:
        """The country named nearest to the claim in its own sentence (the claim's words aside), else the answer's.

        Nearest rather than most-mentioned: in "in Australia you can work 48 hours per fortnight; in Canada…" the
        48 hours belongs to Australia.
        """
        s0, s1 = self.sentences.bounds(claim.span[0])
        a, b = claim.span
        best = None
        i = bisect_left(self.starts, a) - 1  # the last mention before the claim that ends before it
        while i >= 0 and self.starts[i] >= s0:
            if self.spans[i][1] <= a:
                best = self.spans[i]
                break
            i -= 1  # a name the claim sits in ("1" of "Stamp 1G"): not before it
        # A name glued to the claim ("Canada20 hours") counts, as it did when each sentence was scanned alone.
        text = self.sentences.text
        if a > s0 and not text[a - 1].isspace() and _WORDISH.match(text, a):
            w0 = max(s0, a - _EDGE)
            glued = [sp for sp in destination_spans(text[w0:a]) if sp[1] == a - w0 and (sp[0] or w0 == s0)]
            if glued and (best is None or w0 + glued[-1][0] >= best[0]):
                return glued[-1][2]
        if best is not None:
            return best[2]
        if b < s1 and not text[b].isspace() and _WORDISH.match(text, b - 1):
            window = text[b:min(s1, b + _EDGE)]
            glued = destination_spans(window)
            if glued and glued[0][0] == 0 and (glued[0][1] < len(window) or b + len(window) == s1):
                return glued[0][2]
        j = bisect_left(self.starts, b)      # the first mention after it, inside the sentence
        while j < len(self.spans) and self.starts[j] < s1:
            if self.spans[j][1] <= s1:
                return self.spans[j][2]
            j += 1
        return fallback



__all__ = ["Auditor", "AuditResult", "Claim", "ClaimKind", "ClaimStatus", "find_scaffolding", "has_caveat",
           "is_policy_sensitive"]
