"""The conversation log: record what a student was shown, queue it for advisers by risk, keep their decisions.

Every write is its own short transaction, committed before the call returns, so a reviewer action that the
page reported as saved survives a server restart, and several server workers can write to one SQLite file
(WAL mode) or one PostgreSQL database without losing rows.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from .db import Feedback, LogDBError, ReviewAction, TurnLog, connect, upgrade, utcnow
from ..serve.gate import NOTABLE as GATE_NOTABLE
from .pii import redact

# Gate actions that changed what the student read: the gate's own list (so a new edit kind, such as the
# removed_rule / corrected_rule edits this filter once missed, counts the day the gate makes it), less the
# composed / out-of-scope answers, which the answer-mode reason already counts, plus the names older logs used.
NOTABLE_GATE = (set(GATE_NOTABLE) - {"composed", "out_of_scope"}) | {"removed_entity", "premise_corrected",
                                                                      "polarity_corrected"}
ACTIONS = ("approve", "edit", "fact_wrong", "fact_outdated", "propose")
# Below this retrieval score the answer rested on weak evidence (RRF scores: a fact ranked first by both
# retrievers scores 2/61 ≈ 0.033; ranked ~10th by one only, ≈ 0.014).
LOW_SCORE = 0.02


class ReviewError(ValueError):
    """A reviewer action that cannot be applied (unknown turn, unknown action, missing field)."""


@dataclass
class Risk:
    score: float
    reasons: list[str] = field(default_factory=list)


def assess_risk(*, gate_changes: list[dict[str, Any]], answer_mode: str, fallback: bool, policy_sensitive: bool,
                top_score: float | None, has_sources: bool, feedback: int | None) -> Risk:
    """Why an adviser should look at this answer first; the weights order the queue, the reasons explain it."""
    reasons: list[tuple[float, str]] = []
    if feedback is not None and feedback < 0:
        # A student saying the answer is wrong outranks every automatic signal combined but one.
        reasons.append((6.0, "the student gave it a thumbs-down"))
    notable = [c for c in gate_changes if c.get("action") in NOTABLE_GATE]
    if notable:
        reasons.append((3.0, f"the fact check changed the answer ({len(notable)} edit(s))"))
    if fallback or answer_mode == "compose":
        reasons.append((2.0, "the composed fallback answered" if fallback else "a composed answer"))
    if policy_sensitive:
        reasons.append((2.0, "policy-sensitive topic (visa, funds, work, health cover)"))
    if not has_sources:
        reasons.append((1.0, "no knowledge-base fact was used"))
    elif top_score is not None and top_score < LOW_SCORE:
        reasons.append((1.0, f"low retrieval score ({top_score:.3f})"))
    return Risk(sum(w for w, _ in reasons), [r for _, r in reasons])


class LogStore:
    """Thread-safe access to the log database (one engine, one short session per call)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = connect(url)
        # Several workers may start at once: a second one can lose the race to create the tables; by then the
        # first has created them, so the retry finds the schema at head and does nothing.
        for attempt in range(3):
            try:
                upgrade(self.engine)
                break
            except LogDBError:
                if attempt == 2:
                    raise
                time.sleep(0.5 * (attempt + 1))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.Lock()

    def session(self) -> Session:
        return self._sessions()

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------------ logging
    def record_turn(self, *, request_id: str, conversation_id: str, messages: list[dict[str, str]],
                    answer: str, raw_text: str, gate: dict[str, Any], sources: list[dict[str, Any]],
                    kb_version: str | None, model_id: str, adapter_id: str | None, latency_ms: float) -> int:
        """Store one answered turn (question and history PII-redacted); return its id."""
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        last = users[-1] if users else len(messages)
        question = messages[last]["content"] if users else ""
        history = [{"role": m["role"], "content": redact(m["content"])} for m in messages[:last]
                   if m.get("role") in ("user", "assistant")]
        changes = list(gate.get("changes") or [])
        mode = str(gate.get("mode") or "generate")
        fallback = bool(gate.get("fallback") or gate.get("composed_fallback"))
        scores = [float(s["score"]) for s in sources if s.get("score") is not None]
        top = max(scores) if scores else None
        policy = any(s.get("policy_sensitive") for s in sources if s.get("cited")) or any(
            c.get("action") == "added_caveat" for c in changes)
        risk = assess_risk(gate_changes=changes, answer_mode=mode, fallback=fallback, policy_sensitive=policy,
                           top_score=top, has_sources=bool(sources), feedback=None)
        row = TurnLog(request_id=request_id, conversation_id=conversation_id, created_at=utcnow(),
                      question=redact(question), history=history, answer=redact(answer),
                      raw_text=redact(raw_text), answer_mode=mode, gate_changed=bool(gate.get("changed")),
                      gate_changes=changes, sources=sources,
                      topics=sorted({s["topic"] for s in sources if s.get("topic") and s.get("cited")}),
                      kb_version=kb_version, model_id=model_id, adapter_id=adapter_id,
                      latency_ms=round(latency_ms, 1), top_score=top, policy_sensitive=policy,
                      risk=risk.score, risk_reasons=risk.reasons, status="pending")
        with self.session() as s, s.begin():
            s.add(row)
        return row.id

    def add_feedback(self, request_id: str, rating: int, comment: str | None = None) -> int:
        if rating not in (-1, 1):
            raise ReviewError("rating must be 1 (thumbs up) or -1 (thumbs down)")
        with self.session() as s, s.begin():
            turn = s.scalar(select(TurnLog).where(TurnLog.request_id == request_id))
            if turn is None:
                raise ReviewError(f"no logged answer with id {request_id!r}")
            comment = redact(comment.strip())[:2000] if comment and comment.strip() else None
            s.add(Feedback(turn_id=turn.id, rating=rating, comment=comment, created_at=utcnow()))
            turn.feedback, turn.feedback_comment = rating, comment
            self._rescore(turn)
            return turn.id

    @staticmethod
    def _rescore(turn: TurnLog) -> None:
        risk = assess_risk(gate_changes=turn.gate_changes or [], answer_mode=turn.answer_mode,
                           fallback=any("fallback" in r for r in turn.risk_reasons or []),
                           policy_sensitive=turn.policy_sensitive, top_score=turn.top_score,
                           has_sources=bool(turn.sources), feedback=turn.feedback)
        turn.risk, turn.risk_reasons = risk.score, risk.reasons

    # ------------------------------------------------------------------------------------------- review
    def queue(self, status: str | None = "pending", limit: int = 50, offset: int = 0) -> list[TurnLog]:
        """Turns to review, riskiest first, then newest first."""
        q = select(TurnLog).order_by(TurnLog.risk.desc(), TurnLog.created_at.desc(), TurnLog.id.desc())
        if status:
            q = q.where(TurnLog.status == status)
        with self.session() as s:
            return list(s.scalars(q.limit(limit).offset(offset)))

    def get(self, turn_id: int) -> TurnLog:
        with self.session() as s:
            turn = s.scalar(select(TurnLog).options(selectinload(TurnLog.actions)).where(TurnLog.id == turn_id))
            if turn is None:
                raise ReviewError(f"no logged answer with id {turn_id}")
            return turn

    def review(self, turn_id: int, *, reviewer: str, action: str, corrected_answer: str | None = None,
               fact_id: str | None = None, note: str | None = None, proposal: dict[str, Any] | None = None,
               kb_version: str | None = None) -> ReviewAction:
        """Record one adviser decision (append-only) and update the turn's status."""
        reviewer = (reviewer or "").strip()
        if not reviewer:
            raise ReviewError("reviewer: say who is reviewing (a name or initials)")
        if action not in ACTIONS:
            raise ReviewError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
        if action == "edit" and not (corrected_answer or "").strip():
            raise ReviewError("corrected_answer: an edit needs the corrected answer text")
        if action in ("fact_wrong", "fact_outdated") and not (fact_id or "").strip():
            raise ReviewError("fact_id: say which fact is wrong or outdated")
        if action == "propose":
            _check_proposal(proposal)
        with self.session() as s, s.begin():
            turn = s.get(TurnLog, turn_id)
            if turn is None:
                raise ReviewError(f"no logged answer with id {turn_id}")
            if fact_id and action in ("fact_wrong", "fact_outdated"):
                known = {src.get("id") for src in turn.sources or []}
                if fact_id not in known:
                    raise ReviewError(f"fact_id: {fact_id!r} is not one of this answer's sources")
            act = ReviewAction(turn_id=turn_id, reviewer=reviewer[:128], action=action, created_at=utcnow(),
                               corrected_answer=corrected_answer.strip() if corrected_answer else None,
                               fact_id=fact_id, note=(note or "").strip() or None, proposal=proposal,
                               kb_version=kb_version or turn.kb_version)
            s.add(act)
            if action == "approve":
                turn.status = "approved"
            elif action == "edit":
                turn.status = "corrected"
            elif turn.status == "pending":
                turn.status = "flagged"  # a fact problem noted; the answer itself still awaits approve/edit
        return act

    def reviewed(self) -> Iterator[tuple[TurnLog, ReviewAction]]:
        """Approved or corrected turns with the decision that settled them (the last approve/edit)."""
        with self.session() as s:
            q = (select(TurnLog).options(selectinload(TurnLog.actions))
                 .where(TurnLog.status.in_(("approved", "corrected"))).order_by(TurnLog.id))
            for turn in s.scalars(q):
                settled = [a for a in turn.actions if a.action in ("approve", "edit")]
                if settled:
                    yield turn, settled[-1]

    def actions(self, kinds: tuple[str, ...] = ACTIONS) -> list[tuple[ReviewAction, TurnLog]]:
        with self.session() as s:
            q = (select(ReviewAction, TurnLog).join(TurnLog, ReviewAction.turn_id == TurnLog.id)
                 .where(ReviewAction.action.in_(kinds)).order_by(ReviewAction.id))
            return [(a, t) for a, t in s.execute(q)]

    # ---------------------------------------------------------------------------------------- retention
    def delete_conversation(self, conversation_id: str) -> int:
        with self.session() as s, s.begin():
            ids = list(s.scalars(select(TurnLog.id).where(TurnLog.conversation_id == conversation_id)))
            if ids:
                s.execute(delete(ReviewAction).where(ReviewAction.turn_id.in_(ids)))
                s.execute(delete(Feedback).where(Feedback.turn_id.in_(ids)))
                s.execute(delete(TurnLog).where(TurnLog.id.in_(ids)))
            return len(ids)

    def purge(self, older_than_days: int, now: dt.datetime | None = None) -> int:
        """Delete turns (and their reviews and feedback) older than the retention period."""
        if older_than_days < 1:
            raise ReviewError("retention must be at least 1 day")
        cutoff = (now or utcnow()) - dt.timedelta(days=older_than_days)
        with self.session() as s, s.begin():
            ids = list(s.scalars(select(TurnLog.id).where(TurnLog.created_at < cutoff)))
            if ids:
                s.execute(delete(ReviewAction).where(ReviewAction.turn_id.in_(ids)))
                s.execute(delete(Feedback).where(Feedback.turn_id.in_(ids)))
                s.execute(delete(TurnLog).where(TurnLog.id.in_(ids)))
            return len(ids)

    def count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(TurnLog)) or 0)


def _check_proposal(p: dict[str, Any] | None) -> None:
    if not isinstance(p, dict):
        raise ReviewError("proposal: a new fact or guidance proposal needs its fields")
    for key in ("statement", "destination", "topic", "source_url"):
        if not str(p.get(key) or "").strip():
            raise ReviewError(f"proposal.{key}: required")
    url = str(p["source_url"]).strip()
    if not url.startswith("https://"):
        raise ReviewError("proposal.source_url: must be an https URL of an official page")


def turn_dict(t: TurnLog, with_actions: bool = False) -> dict[str, Any]:
    """What the review page shows of a turn (JSON-safe)."""
    out = {"id": t.id, "request_id": t.request_id, "conversation_id": t.conversation_id,
           "created_at": t.created_at.isoformat() if t.created_at else None, "question": t.question,
           "history": t.history, "answer": t.answer, "raw_text": t.raw_text, "answer_mode": t.answer_mode,
           "gate_changed": t.gate_changed, "gate_changes": t.gate_changes, "sources": t.sources,
           "topics": t.topics, "kb_version": t.kb_version, "model_id": t.model_id, "adapter_id": t.adapter_id,
           "latency_ms": t.latency_ms, "top_score": t.top_score, "policy_sensitive": t.policy_sensitive,
           "risk": t.risk, "risk_reasons": t.risk_reasons, "feedback": t.feedback,
           "feedback_comment": t.feedback_comment, "status": t.status}
    if with_actions:
        out["actions"] = [{"id": a.id, "created_at": a.created_at.isoformat() if a.created_at else None,
                           "reviewer": a.reviewer, "action": a.action, "corrected_answer": a.corrected_answer,
                           "fact_id": a.fact_id, "note": a.note, "proposal": a.proposal} for a in t.actions]
    return out
