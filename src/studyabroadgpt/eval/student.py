"""Student-facing metrics: what a student reading the answer would notice, per item, for every system.

The detectors are the answer path's own (``serve/checks.py``: one implementation of each check, shared with the
server's guard), so a rate printed here is the failure the server is meant to prevent:

* ``looping_rate`` — the answer repeats a line, sentence, list item or phrase (``find_loops``);
* ``distinct_2`` — distinct word bigrams / all bigrams *within* the answer (1.0 = no repeated bigram; degenerate
  repetition drives it down even when no whole sentence repeats);
* ``foreign_url_rate`` — a URL or web address that is not a source URL of the knowledge base;
* ``unverified_entity_rate`` — a named organisation, agency, university, scheme or test that neither the KB nor
  the question contains, left unmarked;
* ``off_topic_citation_rate`` — among answers that cite KB sources (the ``sources`` column, or KB URLs in the
  text of a foreign file), those citing a source that is not about the question (``off_topic_sources``);
* ``honest_out_of_scope_rate`` — on out-of-scope prompts (``checks.out_of_scope`` / category ``uncovered``),
  answers that say plainly there is no official information and point to an official source;
* ``premise_corrected_rate`` — on false-premise prompts, answers that push back on the premise within their
  first sentences (a lexical heuristic: the judge's premise score is the stronger measure);
* ``expected_fact_rate`` — on prompts whose ``checks.expect_facts`` name the KB facts a right answer uses,
  answers that cite or correctly state one of them (cited source, or a claim the audit matched to it);
* ``right_destination_rate`` — on prompts with ``checks.destination``, answers that state or cite no fact of
  another destination;
* ``expect_pass_rate`` — answers passing every machine-readable check their prompt has (the above, plus
  ``no_kb_fact_needed``: no invented specific and no unverified name).

Category metrics are ``None`` (not applicable) on items outside their category, so CIs and paired comparisons
use exactly the prompts of that kind.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from .outputs import Answer

STUDENT_METRICS = ("looping_rate", "distinct_2", "foreign_url_rate", "unverified_entity_rate",
                   "off_topic_citation_rate", "honest_out_of_scope_rate", "premise_corrected_rate",
                   "expected_fact_rate", "right_destination_rate", "expect_pass_rate")

_WORDS = re.compile(r"[\w'’]+")
# Pushing back on a premise: "Toronto is actually in Canada", "the GRE is not required", "no longer", …
_CORRECTION = re.compile(
    r"\b(?:actually|in fact|however|but note|not (?:a|an|the|in|required|needed|necessary|usually|typically|"
    r"generally|part of|accepted|used|correct|true|possible|allowed)|isn't|aren't|doesn't|don't (?:need|usually|"
    r"generally|have to|require)|do not (?:need|usually|generally|have to|require)|no longer|rather than|instead|"
    r"misconception|mistaken|incorrect|there is no|there are no|no such)\b", re.IGNORECASE)
PREMISE_WINDOW_CHARS = 400  # a correction that comes after the answer has gone along with the premise is not one


def distinct_n(text: str, n: int = 2) -> float | None:
    words = [w.lower() for w in _WORDS.findall(text)]
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def corrects_premise(text: str) -> bool:
    return bool(_CORRECTION.search(text[:PREMISE_WINDOW_CHARS]))


def is_out_of_scope(a: Answer) -> bool:
    return bool((a.checks or {}).get("out_of_scope")) or a.category == "uncovered"


def is_false_premise(a: Answer) -> bool:
    return bool((a.checks or {}).get("false_premise")) or a.category == "false_premise"


def _cited_groups(a: Answer, kb: Any) -> list[list[Any]]:
    """What the answer cites, as groups of facts: one per cited source id, or one per KB URL in the text (a URL
    may back several facts; the citation is off topic only if none of them is on topic)."""
    if a.sources is not None:
        return [[kb.by_id[i]] for i in a.sources if i in kb.by_id]
    by_url: dict[str, list[Any]] = {}
    for f in kb.facts:
        by_url.setdefault(str(f.source_url).rstrip("/"), []).append(f)
    found = {u.rstrip("/.,;:)") for u in re.findall(r"https?://[^\s<>()\[\]\"']+", a.response)}
    return [by_url[u] for u in sorted(found) if u in by_url]


def _referenced_facts(a: Answer, kb: Any, audit: dict | None) -> set[str]:
    """Fact ids the answer cites or that the audit matched one of its claims to (supported or contradicted)."""
    ids = {f.id for g in _cited_groups(a, kb) for f in g} if a.sources is not None else set()
    for c in (audit or {}).get("claims", []):
        if c.get("fact_id") and c.get("status") in ("supported", "contradicted"):
            ids.add(c["fact_id"])
    return ids


def item_values(a: Answer, kb: Any, audit: dict | None) -> dict[str, float | None]:
    """Every student-facing metric for one answer (None where it does not apply)."""
    from ..serve.checks import find_loops, foreign_urls, off_topic_sources, says_no_information, \
        unverified_entities

    text, checks = a.response, a.checks or {}
    marked = "(unverified)"
    unverified = [f for f in unverified_entities(text, a.prompt, kb)
                  if marked not in text[f.span[1]:f.span[1] + len(marked) + 2]]
    groups = _cited_groups(a, kb)
    off_topic = None
    if groups:
        off_topic = float(any(len(off_topic_sources(a.prompt, g)) == len(g) for g in groups))
    out: dict[str, float | None] = {
        "looping_rate": float(bool(find_loops(text))),
        "distinct_2": distinct_n(text, 2),
        "foreign_url_rate": float(bool(foreign_urls(text, kb))),
        "unverified_entity_rate": float(bool(unverified)),
        "off_topic_citation_rate": off_topic,
        "honest_out_of_scope_rate": float(says_no_information(text)) if is_out_of_scope(a) else None,
        "premise_corrected_rate": float(corrects_premise(text)) if is_false_premise(a) else None,
        "expected_fact_rate": None,
        "right_destination_rate": None,
    }
    referenced = _referenced_facts(a, kb, audit)
    if checks.get("expect_facts"):
        expected = set(checks["expect_facts"])
        out["expected_fact_rate"] = float(bool(expected & referenced))
    if checks.get("destination"):
        dest = checks["destination"]
        others = [i for i in referenced if i in kb.by_id and kb.by_id[i].destination not in (dest, "any")]
        out["right_destination_rate"] = float(not others)
    parts = [v for k, v in out.items() if k in ("honest_out_of_scope_rate", "premise_corrected_rate",
                                               "expected_fact_rate", "right_destination_rate") and v is not None]
    if checks.get("no_kb_fact_needed"):
        invented = bool((audit or {}).get("has_error")) or bool(unverified)
        parts.append(float(not invented))
    out["expect_pass_rate"] = float(all(parts)) if parts else None
    return out


def student_columns(answers: dict[str, list[Answer]], kb: Any,
                    audits: dict[str, list[dict | None]] | None = None) -> tuple[dict, dict[str, str]]:
    """``values[metric][system]`` per-item lists and ``unavailable[metric] = why`` for metrics no item has."""
    values: dict[str, dict[str, list[float | None]]] = {m: {} for m in STUDENT_METRICS}
    for system, ans in answers.items():
        sys_audits = (audits or {}).get(system) or [None] * len(ans)
        rows = [item_values(a, kb, au) for a, au in zip(ans, sys_audits)]
        for m in STUDENT_METRICS:
            values[m][system] = [r[m] for r in rows]
    unavailable = {}
    why: dict[str, Callable[[], str]] = {
        "off_topic_citation_rate": lambda: "no answer cites a knowledge-base source",
        "honest_out_of_scope_rate": lambda: "no out-of-scope prompts (checks.out_of_scope / category uncovered)",
        "premise_corrected_rate": lambda: "no false-premise prompts (checks.false_premise)",
        "expected_fact_rate": lambda: "no prompt lists checks.expect_facts",
        "right_destination_rate": lambda: "no prompt has checks.destination",
        "expect_pass_rate": lambda: "the prompts carry no machine-readable checks",
        "distinct_2": lambda: "every answer is shorter than two words",
    }
    for m in list(values):
        if all(v is None for col in values[m].values() for v in col):
            unavailable[m] = why.get(m, lambda: "not applicable")()
            del values[m]
    return values, unavailable
