"""One advising turn end to end, shared by the server, the terminal chat and the eval:
``prepare`` (scope, retrieve, build the grounded prompt) → the generator (``stream_turn`` / ``collect``) →
``finish`` (cut loops, gate, checks, the composed fallback, citations, caveat, sources list).

Answer modes:

* ``generate`` — the model answers; the gate and the checks edit what it wrote;
* ``compose``  — no model: a cited answer built from the relevant retrieved facts and guidance by the
  synthesis template writer (``synth.writers``), so every specific in it is sourced;
* ``auto`` (default) — generate, run the checks, and serve the composed answer instead when the generated
  one fails them (a repetition loop, too many unverified specifics, off topic, empty), saying why in the
  ``gate`` field. What the student reads is then never worse than the composed floor.

A question about a destination or institution the knowledge base does not cover gets a plain answer that
says so and names the kind of official source to check, with no unrelated facts (``kb.coverage``).
"""
from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from .gate import NOTABLE, Auditor, GateChange, cited_numbers, drop_unknown_citations, run_gate
from .generation import GenerationError, GenParams, Generator, Piece, PromptTooLong
from .grounding import Searcher, Source, grounded_messages, retrieve

MODES = ("generate", "compose", "auto")
# A generated answer with this many unverified or removed specifics is worse than the composed floor: it
# reads as confident advice the student cannot check (measured on the real-style set: answers with 2+
# were the ones the expert reader marked harmful).
MAX_UNVERIFIED = 2
# Fewer words than this left after the fact check removed something: a stub (S2's was 14 words).
MIN_LEFT_WORDS = 25
# Serve the composed answer when the fact check edited the generated one even once and facts on the question
# were retrieved (the lead's reading at d1ae96f: all 5 generate-mode answers of 32 turns carried a mark or a rule
# correction, and each was confidently wrong). Measured on the 110-prompt real-style set: see docs/serving.md.
FALL_BACK_ON_ONE_DOUBT = True
# Serve the composed answer to a question on a rule (visa, work, fees, funds, family, post-study, deadlines) whenever
# official facts on it were retrieved, even when the generated answer passed every check: the checks cannot see a
# wrong verdict in the model's own words ("Yes, she can ... students with disabilities"). Measured on the 110-prompt
# real-style set (raw answers of d1ae96f re-finished): default model 8 answers move to compose (4 were wrong:
# "The orientation year in the Netherlands is 2025-14", ...; 4 right ones now say the same from the facts), the
# quickstart adapter 12 (8 wrong: "No, you do not need a residence permit to study in the Netherlands", "The
# official US visa for studying in Toronto is the F-1", ...); none became worse.
COMPOSE_POLICY_RULES = True
POLICY_SUBJECTS = frozenset({"visa_rule", "work_hours", "internship", "visa_fee", "tuition", "funds", "dependants",
                             "post_study", "deadline", "apply_timing", "permanent_residence", "study_progress"})
# A question in the form of a rule or a figure: yes/no, "is it true", how much / long / many.
_RULE_FORM = re.compile(r"^\s*(?:can|could|may|do|does|must)\b|"
                        r"\b(?:can|could|may|must)\s+(?:i|we|she|he|they|my\s+\w+)\b|\bdo\s+i\s+(?:need|have\s+to)\b|"
                        r"\bis\s+it\s+(?:true|possible|allowed|legal)\b|\bam\s+i\s+allowed\b|"
                        r"\bhow\s+(?:much|long|many|early|soon)\b", re.IGNORECASE)
# The change kinds, named once: each new kind was being added by hand to four lists in this module.
_REMOVALS = ("removed", "removed_rule", "removed_url", "removed_title",   # the gate took a claim out
             "removed_unverified")
_UNVERIFIED = ("marked_unverified",) + _REMOVALS                           # a specific nothing vouches for
_DOUBTS = _UNVERIFIED + ("corrected_rule",)


@dataclass
class Turn:
    messages: list[dict[str, str]]
    model_messages: list[dict[str, str]]
    question: str
    sources: list[Source] = field(default_factory=list)
    rag: bool = False
    gate: bool = False
    mode: str = "generate"
    scope: Any = None                 # kb.coverage.Scope of the question (None without grounding)
    out_of_scope: bool = False        # names only destinations / institutions the KB does not cover
    loop_stopped: bool = False        # stream_turn stopped the model because its text fell into a loop
    trimmed: str = ""                 # the unfinished last sentence stream_turn held back at the token limit

    @property
    def generates(self) -> bool:
        """Whether the model is asked at all (compose mode and honest out-of-scope answers need no model)."""
        if self.mode == "compose":
            return False
        return not (self.out_of_scope and self.mode == "auto")


@dataclass
class Final:
    content: str          # the answer as it should be shown: corrected, cited, caveated, with sources
    tail: str             # what a stream appends after the raw model text (note, caveat, sources)
    sources: list[dict[str, Any]]
    gate: dict[str, Any]
    mode: str = "generate"  # the mode that produced ``content``: generate | compose | out_of_scope


class Answerer:
    def __init__(self, searcher: Searcher | None, auditor: Auditor | None, top_k: int = 4, mode: str = "auto",
                 kb: Any = None):
        if mode not in MODES:
            raise ValueError(f"answer mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.searcher, self.auditor, self.top_k, self.mode = searcher, auditor, top_k, mode
        self.kb = kb if kb is not None else getattr(searcher, "kb", None)

    @classmethod
    def from_kb(cls, kb_path: str | None = None, top_k: int = 4, gate: bool = True,
                mode: str = "auto") -> "Answerer":
        """Grounding over the shipped knowledge base (or ``kb_path``), with the claim auditor as gate."""
        from ..kb.search import Retriever
        from ..kb.store import load_kb

        searcher = Retriever.default() if kb_path is None else Retriever.from_kb(load_kb(kb_path))
        auditor = None
        if gate:
            from ..kb.audit import Auditor as KBAuditor

            auditor = KBAuditor.default() if kb_path is None else KBAuditor(searcher.kb, searcher)
        # One search now loads the sentence encoder, so the first student does not wait for it.
        searcher.search("student visa", k=1)
        return cls(searcher, auditor, top_k, mode=mode, kb=searcher.kb)

    # ------------------------------------------------------------------------------------------ prepare

    def prepare(self, messages: list[dict[str, str]], rag: bool = True, gate: bool = True,
                mode: str | None = None) -> Turn:
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"answer mode must be one of {', '.join(MODES)}, not {mode!r}")
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if not rag or self.searcher is None:
            # Without grounding there is nothing to compose from: the model answers, ungated.
            return Turn(messages, list(messages), question, mode="generate")
        scope = self._scope(question)
        out = bool(scope is not None and getattr(scope, "out_of_scope", False))
        sources = [] if out else retrieve(self.searcher, messages, self.top_k)
        model_messages = grounded_messages(messages, sources, out_of_scope=scope.uncovered if out else None)
        return Turn(messages, model_messages, question, sources, rag=True, gate=gate and self.auditor is not None,
                    mode=mode, scope=scope, out_of_scope=out)

    def _scope(self, question: str) -> Any:
        if self.kb is None:
            return None
        try:
            from ..kb.coverage import detect_scope
        except ImportError:  # a KB package without coverage detection: every question is in scope
            return None
        return detect_scope(question, self.kb)

    # ------------------------------------------------------------------------------------------ finish

    def finish(self, turn: Turn, raw: str) -> Final:
        answer = raw.strip()
        if not turn.rag:
            return Final(answer, "", [], {"enabled": False, "changed": False, "changes": [], "note": None,
                                          "mode": "generate"}, "generate")
        if turn.out_of_scope:
            return self._out_of_scope(turn, answer)
        if not turn.generates:
            return self._composed(turn, [], reason="compose mode", streamed=False)
        from .checks import answer_off_topic, cut_loops, find_degenerate

        changes: list[GateChange] = []
        if turn.trimmed:
            changes.append(GateChange("trimmed", turn.trimmed.strip(), reason="the model reached the token limit "
                                      "mid-sentence; the unfinished sentence was left out"))
        answer, loops = cut_loops(answer)
        changes += [GateChange("cut_loop", lp.unit, reason=f"repeated {lp.count} times", kind=lp.kind)
                    for lp in loops]
        answer, leaks = drop_quoted_titles(answer, turn.sources)
        changes += leaks
        answer, strays = drop_off_destination(answer, turn.question, _earlier_questions(turn.messages))
        changes += strays
        if turn.loop_stopped and not loops:
            changes.append(GateChange("cut_loop", reason="the model was stopped when it started repeating itself"))
        # Degenerate text is judged on what the model wrote: the gate's "(unverified)" marks break up the very
        # patterns (a copied "[3] (United States, student visa, as of 2019-07-28)" line was served so).
        degenerate = find_degenerate(answer) if turn.mode == "auto" else []
        policy = False
        if turn.gate:
            result = run_gate(self.auditor, answer, turn.question, turn.sources, kb=self.kb,
                              context=_earlier_questions(turn.messages))
            answer, policy = result.text, result.policy_sensitive
            changes += result.changes
        else:
            answer, dropped = drop_unknown_citations(answer, {s.n for s in turn.sources})
        if turn.mode == "auto":
            unsupported = self._unsupported_rules(turn, answer, changes)
            why = _fails(answer, changes, loops, answer_off_topic(turn.question, answer), degenerate, unsupported)
            if not why and FALL_BACK_ON_ONE_DOUBT:
                why = self._doubt_with_facts(turn, changes)
            if not why and COMPOSE_POLICY_RULES:
                why = self._rule_with_facts(turn)
            if why:
                if degenerate:
                    changes.append(GateChange("degenerate", degenerate[0].sample, reason=degenerate[0].reason,
                                              kind=degenerate[0].kind))
                # Nonsense is never served: with nothing relevant to compose from, the plain no-facts answer.
                # So are invented specifics (2+ marked or removed): "How much does a Japanese language school
                # cost in Tokyo?" was served "a 12-year (unverified) high school Japanese language course is around
                # $3,059 (unverified)" with five marks, because no retrieved fact was about language schools.
                many = sum(c.action in _DOUBTS for c in changes) >= MAX_UNVERIFIED
                final = self._composed(turn, changes, reason=why, streamed=True,
                                       floor=bool(degenerate) or bool(unsupported) or many)
                if final is not None:
                    return final
        return self._assemble(turn, answer, changes, policy, mode="generate")

    def _doubt_with_facts(self, turn: Turn, changes: list[GateChange]) -> str | None:
        """Why the composed answer beats a generated one the fact check had to edit even once, when official facts
        on the question were retrieved (``FALL_BACK_ON_ONE_DOUBT``), or None."""
        from .compose import asked, relevant_sources

        doubtful = [c for c in changes if c.action in _DOUBTS]
        earlier = _earlier_questions(turn.messages)
        # Only for a question on a subject (work hours, funds, post-study work...): a soft-advice answer with one
        # mark ("Is it bad to have a gap year...?") was replaced by the deferral guidance, which answers less.
        if not doubtful or not asked(turn.question, earlier) or not relevant_sources(turn.question, turn.sources,
                                                                                     earlier):
            return None
        return (f"the fact check had to edit the model's answer ({doubtful[0].describe()}), and official facts "
                "on the question were retrieved")

    def _rule_with_facts(self, turn: Turn) -> str | None:
        """Why the composed answer beats a generated one that passed the checks (``COMPOSE_POLICY_RULES``): the
        question asks a rule and official facts on it were retrieved; or None."""
        from .compose import asked, relevant_sources

        earlier = _earlier_questions(turn.messages)
        subjects = asked(turn.question, earlier) & POLICY_SUBJECTS
        # A yes/no or a figure asked of a destination we cover is a rule question too ("My daughter is 16, can
        # she study in Canada?" names no subject); advice that names no destination is not.
        form = bool(_RULE_FORM.search(turn.question)) and bool(getattr(turn.scope, "covered", None))
        if not (subjects or form) or not relevant_sources(turn.question, turn.sources, earlier):
            return None
        what = ", ".join(sorted(subjects)) or "a yes/no or a figure"
        return f"the question asks a rule ({what}) and official facts on it were retrieved"

    def _unsupported_rules(self, turn: Turn, answer: str, changes: list[GateChange]) -> list[Any]:
        """Rule statements in a generated answer to a question on a subject for a covered destination that no
        retrieved fact supports (``checks.unsupported_rules``). The gate marks these in policy answers; on any
        other subject nothing checked them: "You cannot study in Japan without speaking Japanese" and "No, you
        cannot study in France with English as your native language" were served as generated."""
        from .compose import asked
        from .gate import sentences

        if any(c.kind in ("rule", "rule_change") for c in changes):
            return []  # the gate's policy check already ran on this answer
        scope = turn.scope
        if scope is None or not getattr(scope, "covered", None) or not asked(turn.question,
                                                                             _earlier_questions(turn.messages)):
            return []
        from .checks import _RULE_ASSERT, _support, unsupported_rules
        from .compose import relevant_sources

        facts = [s.fact for s in turn.sources]
        bounds = sentences(answer)
        if not relevant_sources(turn.question, turn.sources, _earlier_questions(turn.messages)):
            # Nothing retrieved is on the subject asked: any verdict or rule the answer states is unchecked
            # ("Yes, most Dutch universities teach in Dutch, with many other languages taught by ... their
            # language centres abroad"). The floor says plainly that we have no official fact on it.
            claims = [answer[a:b].strip() for a, b in bounds if _BAN.search(answer[a:b])
                      or _RULE_ASSERT.search(answer[a:b]) or _VERDICT.match(answer[a:b])]
            # A figure is no better: "How many years do I need to live in the UAE before I can get permanent
            # residency?" was served the model's "12 years (unverified)" (lead's reading, d1ae96f); with no fact
            # on the subject nothing can vouch for any number the model gives.
            claims += [c.sentence.strip() for c in self._figures(answer, turn.question)]
            return [_Unsupported(c, "no retrieved official fact is on the subject asked") for c in claims[:1]]
        found = unsupported_rules(answer, facts, bounds)
        flagged = {f.span for f in found}
        if bounds and bounds[0] not in flagged and _VERDICT.match(answer[bounds[0][0]:bounds[0][1]]):
            # The answer's opening yes/no in the model's own words, which no retrieved fact shares two thirds of
            # the words of: "No, your university degree is not recognized by the German education system." (half
            # its words in the anabin fact, which says recognition is checked case by case). A verdict decides
            # the student's case, so it needs more than the rule sentences' half.
            verdict = answer[bounds[0][0]:bounds[0][1]].strip()
            share, _ = _support(re.sub(r"\[\d{1,2}\]", " ", verdict), facts)
            if share < VERDICT_SUPPORT_SHARE:
                found.append(_Unsupported(verdict, f"a yes/no verdict no retrieved official fact supports "
                                                   f"({share:.0%} of its words in the closest fact)"))
                flagged.add(bounds[0])
        for a, b in bounds:
            sentence = answer[a:b].strip()
            if (a, b) in flagged or not _BAN.search(sentence) or sentence.endswith("?"):
                continue
            # A ban or an "all / only" rule is not supported by a fact that shares its words but states no
            # restriction: "Even in English-taught degree programmes, daily life ... in Japan usually need
            # Japanese" does not support "You cannot study in Japan without speaking Japanese".
            share, fact = _support(sentence, facts)
            if fact is None or not _RESTRICTS.search(fact.statement):
                found.append(_Unsupported(sentence, f"states a ban or an all/only rule no retrieved official fact "
                                                    f"states ({share:.0%} of its words in the closest fact)"))
        return found

    @staticmethod
    def _figures(answer: str, question: str) -> list[Any]:
        """The figures (money, durations, percentages, scores, dates) the answer states that the question did
        not give (``kb.claims``)."""
        from ..kb.claims import ClaimKind, extract_claims, numbers_in

        kinds = {ClaimKind.MONEY, ClaimKind.DURATION, ClaimKind.PERCENTAGE, ClaimKind.SCORE, ClaimKind.DATE}
        return [c for c in extract_claims(answer, skip_numbers=numbers_in(question)) if c.kind in kinds]

    def _assemble(self, turn: Turn, answer: str, changes: list[GateChange], policy: bool, mode: str,
                  streamed_prefix: str = "", streamed: bool = True) -> Final:
        from .premises import premise_notes

        cited = cited_numbers(answer)
        extra: list[str] = []
        moved: list[str] = []   # notes put in place of a sentence: a stream, which cannot edit, appends them
        if turn.gate and self.auditor is not None:
            for note, change in premise_notes(self.auditor, turn.question, answer, turn.sources):
                wrong = (change.slot or {}).get("contradicts") if mode == "generate" else None
                if wrong:
                    # A yes/no the cited list contradicts is not left on top of the correction: the note
                    # takes the first such sentence's place and the others go.
                    answer = _replace_sentences(answer, wrong, note)
                    moved.append(note)
                    changes += [GateChange("corrected_rule", w, change.replacement, change.fact_id, change.citation,
                                           reason=change.reason, slot=change.slot) for w in wrong]
                else:
                    extra.append(note)
                changes.append(change)
                if change.citation:
                    cited.add(change.citation)
        if turn.scope is not None and getattr(turn.scope, "uncovered", None):
            from .compose import not_covered_note

            extra.append(not_covered_note(turn.scope))
        # The most relevant fact that is about the question (retrieval may rank another country's rule first).
        top = next((s for s in turn.sources if _on_topic(turn.question, s, _earlier_questions(turn.messages))
                    and _destination_asked(turn, s)), None)
        if mode == "generate" and top is not None and top.n not in cited:
            # The answer does not use the most relevant fact (small models often drift to a side issue):
            # state it ourselves, cited, so a grounded answer always carries the official fact it needs.
            extra.append(f"**From the official source:** {top.fact.statement} [{top.n}]")
            changes.append(GateChange("added_key_fact", fact_id=top.fact.id, citation=top.n))
            cited.add(top.n)
        caveat = ""
        from ..kb.caveats import has_caveat

        if turn.gate and not (mode == "compose" and has_caveat(answer)):
            caveat, caveat_change = _caveat(turn.sources, cited, policy)
            if caveat_change:
                changes.append(caveat_change)
                cited.add(caveat_change.citation)
        note = _note(changes)
        sources_md = _sources_markdown(turn.sources, cited)
        appendix = [p for p in (*extra, caveat, sources_md) if p]
        content = "\n\n".join([answer, *([note] if note else []), *appendix]).strip()
        if not streamed:  # nothing was streamed before (no model): the tail is the whole answer
            tail = content
        elif streamed_prefix:
            tail = "\n\n" + streamed_prefix + "\n\n" + content
        else:
            stream_note = _stream_note(changes)
            tail = "\n\n" + "\n\n".join([*([stream_note] if stream_note else []), *moved, *appendix])
        gate = {"enabled": turn.gate, "changed": any(c.notable for c in changes),
                "changes": [c.to_dict() for c in changes], "note": note, "content": content,
                "mode": mode, "requested_mode": turn.mode}
        fallback = next((c for c in changes if c.action == "composed"), None)
        if fallback is not None:
            gate["fallback_reason"] = fallback.reason
        return Final(content, tail, [s.to_dict(s.n in cited) for s in turn.sources], gate, mode)

    def _composed(self, turn: Turn, changes: list[GateChange], reason: str, streamed: bool,
                  floor: bool = False) -> Final | None:
        """The composed answer (None when there is nothing relevant to compose from and the model's own,
        gated answer is all there is — unless ``floor``: then the plain no-facts answer)."""
        from .compose import compose_answer

        text = compose_answer(turn.question, turn.sources, messages=turn.messages, kb=self.kb)
        if text is None:
            if not streamed or floor:  # compose mode with nothing relevant, or nonsense: say so plainly
                from .compose import no_fact_answer, related_sources

                earlier = _earlier_questions(turn.messages)
                text = no_fact_answer(turn.question, self.kb, earlier,
                                      related=related_sources(turn.question, turn.sources, earlier)) or \
                    _no_facts_answer(turn)
            else:
                return None
        turn, text = _renumbered(turn, text)
        changes = [c for c in changes if c.action in ("cut_loop", "degenerate")] + \
            [GateChange("composed", reason=reason)]
        prefix = ""
        if streamed:
            prefix = (f"> **Replaced:** the model's answer above did not pass our checks ({reason}). "
                      "Read this answer, composed from the official sources, instead:")
        policy = any(s.fact.policy_sensitive for s in turn.sources)
        return self._assemble(turn, text, changes, policy, mode="compose", streamed_prefix=prefix,
                              streamed=streamed)

    def _out_of_scope(self, turn: Turn, generated: str) -> Final:
        from .compose import out_of_scope_answer

        honest = out_of_scope_answer(turn.question, turn.scope)
        changes = [GateChange("out_of_scope", reason=", ".join(turn.scope.uncovered))]
        content = honest
        mode = "out_of_scope"
        if generated and turn.mode == "generate":
            # Generate mode keeps the model's general advice, checked like any answer, below the honest part.
            from .checks import cut_loops, mark_unverified_entities, remove_foreign_urls

            text, loops = cut_loops(generated)
            changes += [GateChange("cut_loop", lp.unit, reason=f"repeated {lp.count} times") for lp in loops]
            if self.kb is not None:
                text, c1 = remove_foreign_urls(text, self.kb)
                text, c2 = mark_unverified_entities(text, turn.question, self.kb)
                changes += [GateChange(**c) for c in c1 + c2]
            content = f"{honest}\n\n**General advice from the model (not from official sources):**\n\n{text}"
        note = _note(changes)
        gate = {"enabled": turn.gate, "changed": True, "changes": [c.to_dict() for c in changes], "note": note,
                "content": content, "mode": mode, "requested_mode": turn.mode}
        # Streamed: the model's text went out first, so the tail puts the honest answer after it.
        tail = f"\n\n{honest}" if turn.generates and generated else content
        return Final(content, tail, [], gate, mode)


# A ban, or a rule about all / only some, in the model's words; and a fact's statement that restricts something.
_BAN = re.compile(r"\b(?:cannot|can't|can\s+not|not\s+(?:allowed|permitted|possible)|impossible|(?:all|no|every)\s+"
                  r"(?:\w+\s+)?(?:universities|programmes|programs|courses|schools|colleges|students)|only\s+(?:in|teach|"
                  r"for|if|when|available))\b", re.IGNORECASE)
_RESTRICTS = re.compile(r"\b(?:cannot|can't|not|no|only|never|must|required|requires?|prohibited|limited|except)\b",
                        re.IGNORECASE)


VERDICT_SUPPORT_SHARE = 2 / 3
_VERDICT = re.compile(r"\s*(?:yes|no|absolutely|definitely|of\s+course)\b", re.IGNORECASE)


@dataclass
class _Unsupported:
    sentence: str
    reason: str


def _fails(answer: str, changes: list[GateChange], loops: list[Any], off_topic: str | None,
           degenerate: list[Any] = (), unsupported: list[Any] = ()) -> str | None:
    """Why a generated answer must not be served as it is (auto mode), or None."""
    if loops or any(c.action == "cut_loop" for c in changes):
        return "the model's answer was stuck in a repetition loop"
    removed = [c for c in changes if c.action in _REMOVALS + ("removed_off_topic",)]
    # An answer the fact check emptied is not one the model left empty: its reason (nonsense, unverified
    # specifics) is the one the student is told. The sentences an "(unverified)" mark made go (gate's
    # drop_unverified_sentences) can be all the model wrote.
    if len(answer.strip()) < 20 and not removed:
        return "the model's answer was empty"
    if degenerate:
        d = degenerate[0]
        return f"the model's answer degenerated into nonsense ({d.reason}: “{d.sample}”)"
    doubtful = [c for c in changes if c.action in _UNVERIFIED]
    if len(doubtful) >= MAX_UNVERIFIED:
        return f"{len(doubtful)} specifics in the model's answer could not be verified"
    if removed and len(answer.strip()) < 20:  # nothing left to be on or off topic
        return f"nothing of the model's answer was left after the fact check removed {len(removed)} claim(s)"
    if off_topic:
        return f"the model's answer was off topic ({off_topic})"
    if unsupported:
        return f"the model's answer states a rule no official fact supports (“{unsupported[0].sentence[:80]}”)"
    if removed and len(answer.split()) < MIN_LEFT_WORDS:
        # What the fact check left is a stub, not an answer (lead's reading S2: "The cheapest option for an
        # Indian student in Germany is not available.").
        return f"little of the model's answer was left after the fact check removed {len(removed)} claim(s)"
    return None


def _renumbered(turn: Turn, text: str) -> tuple[Turn, str]:
    """The turn's sources renumbered so the composed answer cites 1, 2, … in reading order (the others after),
    and the answer with its citations to match. The composer keeps the server's numbers, so an answer built
    from the second retrieved fact alone cited "[2]" with no [1] anywhere (lead's reading, d1ae96f)."""
    from dataclasses import replace

    valid = {s.n for s in turn.sources}
    order = list(dict.fromkeys(int(m.group(1)) for m in re.finditer(r"\[(\d{1,2})\]", text)
                               if int(m.group(1)) in valid))
    order += [s.n for s in turn.sources if s.n not in order]
    new = {old: i for i, old in enumerate(order, start=1)}
    if all(k == v for k, v in new.items()):
        return turn, text
    sources = sorted((replace(s, n=new[s.n]) for s in turn.sources), key=lambda s: s.n)
    text = re.sub(r"\[(\d{1,2})\]", lambda m: f"[{new.get(int(m.group(1)), m.group(1))}]", text)
    return replace(turn, sources=sources), text


def _replace_sentences(text: str, sentences: list[str], replacement: str) -> str:
    """``text`` with the first of ``sentences`` replaced by ``replacement`` and the rest removed."""
    for i, sentence in enumerate(sentences):
        at = text.find(sentence)
        if at < 0:
            continue
        text = text[:at] + (replacement if i == 0 else "") + text[at + len(sentence):]
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]{2,}", " ", text)).strip()


# "The official facts say:", "According to the official source,", "Source:" — what a model writes before it
# quotes the facts block. Served (UK, children as dependants): 'The official facts say: "<the fact's source
# title>"': the title of a GOV.UK page, printed as if it were the rule.
_SAYS = re.compile(r"(?:\b(?:the\s+|our\s+)?(?:official\s+)?(?:facts?|sources?|information|guidance|rules?|"
                   r"government|website)\s+(?:\[\d{1,2}\]\s+)?(?:says?|states?|reads?|shows?|is|are)|"
                   r"\baccording\s+to\s+(?:the\s+)?(?:official\s+)?(?:facts?|sources?)|^\s*(?:official\s+)?sources?)"
                   r"\s*[:,-]?\s*", re.IGNORECASE)


def _title_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def drop_quoted_titles(text: str, sources: list[Source]) -> tuple[str, list[GateChange]]:
    """Sentences that give a retrieved source's *title* as what the official facts say (the facts block names
    each fact's source title, and a small model copies it): the title is no rule, and printed after "The
    official facts say" a student reads it as one. The sentence goes; the fact itself is added, cited, by
    ``_assemble`` when the answer does not use it."""
    from .gate import sentences

    titles = []
    for s in sources:
        for t in (getattr(s.fact, "source_title", ""), getattr(s.fact, "title", "")):
            if t and len(_title_words(t)) >= 2:
                titles.append((set(_title_words(t)), s))
    if not titles:
        return text, []
    changes: list[GateChange] = []
    for a, b in reversed(sentences(text)):
        sentence = text[a:b]
        m = _SAYS.search(sentence)
        if m is None:
            continue
        said = _title_words(re.sub(r"\[\d{1,2}\]", " ", sentence[m.end():]))
        if len(said) < 2:
            continue
        for words, src in titles:
            if sum(w in words for w in said) >= 0.8 * len(said) and len(said) <= len(words) + 2:
                changes.append(GateChange("removed_title", sentence.strip(), fact_id=src.fact.id,
                                          sentence=sentence.strip(),
                                          reason="gave a source's title as what the official facts say"))
                text = text[:a] + text[b:].lstrip(" ")
                break
    changes.reverse()
    return re.sub(r"\n{3,}", "\n\n", text).strip(), changes


def drop_off_destination(text: str, question: str, context: str = "") -> tuple[str, list[GateChange]]:
    """``text`` without the sentences about destinations the question does not name
    (``checks.off_destination_sentences``), each removal recorded with the places it named."""
    from ..kb.schema import DESTINATIONS
    from .checks import off_destination_sentences
    from .gate import sentences

    changes: list[GateChange] = []
    for (a, b), codes in reversed(off_destination_sentences(text, question, sentences(text), context)):
        sentence = text[a:b].strip()
        places = ", ".join(DESTINATIONS.get(c, c) for c in codes)
        changes.append(GateChange("removed_off_topic", sentence, sentence=sentence,
                                  reason=f"it is about {places}, which the question does not ask about"))
        text = text[:a] + text[b:].lstrip(" ")
    changes.reverse()
    text = re.sub(r"(?m)^[ \t]*(?:[-*+•]|\d{1,2}[.)])[ \t]*$\n?", "", text)  # a list item left empty
    return re.sub(r"\n{3,}", "\n\n", text).strip(), changes


def _no_facts_answer(turn: Turn) -> str:
    return ("The knowledge base has no official fact that answers this question directly, so I cannot give "
            "you sourced specifics. Check the official source for your destination (the university's "
            "admissions page, or the government's immigration website) before you act.")


def _on_topic(question: str, source: Source, context: str = "") -> bool:
    """Whether a retrieved fact is about the question: at or above the retriever's calibrated threshold when
    the hit carries one, and not about another destination or sharing nothing with the question (and, for a
    follow-up, the user turn before it)."""
    from .checks import off_topic_sources
    from .compose import about_asked

    # about_asked (retrieval helper's hook): the appended "From the official source" fact must be about the
    # subject asked — "how early can I apply for my Canadian study permit" got the proof-of-funds rule.
    return not off_topic_sources(question, [source], threshold=getattr(source, "threshold", None),
                                 context=context) and about_asked(question, source, context)


def _destination_asked(turn: Turn, source: Source) -> bool:
    """A destination's own rule is the key fact only for a question about that destination: "I'm 35, am I too old
    to study abroad for a master's?" named none and got the Australian 485 visa age limit as "From the official
    source" (lead's reading S8). Facts for any destination fit any question."""
    from ..kb.geo import detect_destinations

    if getattr(source.fact, "destination", "any") == "any":
        return True
    return bool(detect_destinations(turn.question, exclude_origins=True)
                or detect_destinations(_earlier_questions(turn.messages), exclude_origins=True))


def _earlier_questions(messages: list[dict[str, str]]) -> str:
    """The user turn before the last one ("How many hours can I work in the UK?" before "And for Canada?")."""
    users = [m["content"] for m in messages if m.get("role") == "user" and m.get("content", "").strip()]
    return users[-2] if len(users) > 1 else ""


def _caveat(sources: list[Source], cited: set[int], policy: bool) -> tuple[str, GateChange | None]:
    """Policy-sensitive answers (visa, funds, health cover, work rights...) end by naming the official source
    and the date our information dates from: these rules change without notice."""
    sensitive = [s for s in sources if s.fact.policy_sensitive]
    chosen = next((s for s in sensitive if s.n in cited), None)
    if chosen is None and policy and sources:  # the audit saw visa/funds/work talk in the question or answer
        chosen = sensitive[0] if sensitive else sources[0]
    if chosen is None:
        return "", None
    f = chosen.fact
    text = (f"_Rules on {f.topic.replace('_', ' ')} change often. Check the official source before you act: "
            f"[{f.source_title}]({f.source_url}) (our information is as of {f.as_of.isoformat()}) [{chosen.n}]._")
    return text, GateChange("added_caveat", fact_id=f.id, citation=chosen.n, as_of=f.as_of.isoformat(),
                            url=str(f.source_url))


def _note(changes: list[GateChange]) -> str:
    labels = {"corrected": "figure(s) corrected to the official value",
              "corrected_rule": "rule statement(s) replaced by the official rule",
              "removed": "claim(s) contradicting the official sources removed",
              "removed_rule": "rule statement(s) no official source supports removed",
              "marked_unverified": "claim(s) marked (unverified)",
              "removed_unverified": "unverified claim(s) removed with their sentence",
              "removed_url": "web address(es) not among our official sources removed",
              "removed_title": "source title(s) given as if they were the official fact removed",
              "removed_off_topic": "sentence(s) about a destination you did not ask about removed",
              "cut_loop": "repetition(s) cut", "trimmed": "unfinished last sentence left out"}
    parts = [f"{n} {label}" for a, label in labels.items() if (n := sum(c.action == a for c in changes))]
    return f"> **Fact check:** {'; '.join(parts)}." if parts else ""


def _stream_note(changes: list[GateChange]) -> str:
    """For streamed text, which cannot be edited once sent, the note spells out each change."""
    lines = [f"> - {c.describe()}." for c in changes
             if c.action in ("corrected", "corrected_rule") + _UNVERIFIED
             + ("removed_off_topic", "cut_loop", "trimmed")]
    return "> **Fact check:**\n" + "\n".join(lines) if lines else ""


def _sources_markdown(sources: list[Source], cited: set[int]) -> str:
    shown = [s for s in sources if s.n in cited]
    if not shown:
        return ""
    # One line per page: two facts from one page were listed as "[1] Mental health - NHS" and "[2] Mental
    # health - NHS" (served); the page's line carries both numbers.
    lines: dict[str, list[Source]] = {}
    for s in shown:
        lines.setdefault(str(s.fact.source_url), []).append(s)
    out = []
    for group in lines.values():
        first = group[0].markdown()
        out.append("".join(f"[{s.n}]" for s in group) + first[first.index("]") + 1:] + "  ")
    return "**Sources**\n\n" + "\n".join(out)


# ------------------------------------------------------------------------------------------ streaming

async def stream_turn(generator: Generator, turn: Turn, params: GenParams,
                      stop_on_loop: bool = True) -> AsyncIterator[Piece]:
    """The model's pieces for ``turn`` (none when the turn needs no model), shared by the server's JSON and
    SSE paths and the terminal chat.

    Stops the model as soon as its text falls into a repetition loop (``turn.loop_stopped``): the loop is
    cut anyway, so every further token is wasted CPU, and on the small model a loop runs to max_tokens.
    The generator enforces its own deadline; the outer wait is a backstop for one that does not.

    Near the token limit (from :data:`HOLD_TOKENS` before it, counting :data:`CHARS_PER_TOKEN` characters a
    token, an underestimate so holding starts early) text goes out up to the last complete sentence, line or
    list item, and the rest is held until the next boundary. When the model then stops at the limit (finish
    reason "length"), the held, unfinished last sentence is left out (``turn.trimmed``): served were answers
    ending "... In my opinion," and "... This". Holding it back, rather than trimming in ``finish``, keeps
    streamed and non-streamed answers the same on every engine; holding only near the limit keeps the rest of
    the stream token by token. An answer with no boundary since holding began is sent whole, ending in "…".
    """
    if not turn.generates:
        yield Piece("", "stop")
        return
    from .checks import find_loops

    text, checked, sent = "", 0, 0
    hold_from = max(0, params.max_tokens - HOLD_TOKENS) * CHARS_PER_TOKEN
    held_at: int | None = None   # where holding began
    # aclosing: leaving the loop early (a loop detected) closes the engine's stream at once, which frees its
    # batch row, instead of whenever the abandoned generator is collected.
    async with asyncio.timeout((params.timeout_s or 3600) + 10), \
            contextlib.aclosing(generator.stream(turn.model_messages, params)) as pieces:
        async for piece in pieces:
            text += piece.text
            if piece.finish_reason is not None:
                rest = text[sent:]
                if piece.finish_reason == "length" and rest.strip() and not _COMPLETE.search(rest):
                    if held_at is not None and sent > held_at:
                        turn.trimmed, rest = rest, ""
                    else:  # no complete sentence since holding began: all of it, marked as cut off
                        rest = rest.rstrip() + " …"
                yield Piece(rest, piece.finish_reason, piece.prompt_tokens, piece.completion_tokens)
                return
            if held_at is None and len(text) < hold_from:
                if piece.text:
                    yield piece
                sent = len(text)
            else:
                if held_at is None:
                    held_at = sent
                cut = _last_boundary(text, sent)
                if cut > sent:
                    yield Piece(text[sent:cut])
                    sent = cut
            # Look at line ends (where list items and sentences repeat), at most every 80 characters.
            grown = len(text) - checked
            if stop_on_loop and ((grown >= 80 and "\n" in piece.text) or grown >= 400):
                checked = len(text)
                if find_loops(text):
                    turn.loop_stopped = True  # finish() cuts the loop and says so; clients see "stop"
                    yield Piece(text[sent:], "stop")
                    return


# How near the token limit stream_turn starts holding text back to sentence ends, and the characters a token is
# taken to be: SmolLM2's tokenizer averages about 4 characters a token on English answers, so 3 starts holding
# early rather than late (a sentence begun before holding started cannot be taken back).
HOLD_TOKENS = 64
CHARS_PER_TOKEN = 3
# Where a complete sentence, line or list item ends: a newline, or ".", "!", "?" (with closing quotes, brackets,
# a citation "[2]" or markdown emphasis after it) followed by white space. "2.5", "e.g.," and "gov.uk" are not.
_BOUNDARY = re.compile(r"\n|[.!?…](?:[\"”’')\]*_]|\[\d{1,2}\])*[ \t]+(?=\S)")


_COMPLETE = re.compile(r"[.!?…](?:[\"”’')\]*_]|\[\d{1,2}\])*\s*$")


def _last_boundary(text: str, start: int) -> int:
    """The end of the last complete sentence / line in ``text`` after ``start`` (``start`` when none)."""
    end = start
    for m in _BOUNDARY.finditer(text, max(0, start - 8)):
        if m.end() > end:
            end = m.end()
    return end


async def collect(generator: Generator, turn: Turn, params: GenParams) -> tuple[str, Piece]:
    """The model's whole answer for ``turn`` and its last piece (finish reason, token counts)."""
    parts: list[str] = []
    last = Piece(finish_reason="stop")
    try:
        async for piece in stream_turn(generator, turn, params):
            parts.append(piece.text)
            if piece.finish_reason is not None:
                last = piece
    except TimeoutError:
        last = Piece(finish_reason="timeout")
    return "".join(parts), last


__all__ = ["Answerer", "Turn", "Final", "MODES", "stream_turn", "collect", "NOTABLE", "GenerationError",
           "PromptTooLong"]
