"""The conversation log against SQLite and a real PostgreSQL server: logging, risk queue, reviewer actions,
restart safety, deletion, retention and concurrent writers."""
from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import threading

import pytest
from sqlalchemy import inspect, select, update

from studyabroadgpt.review.db import TurnLog
from studyabroadgpt.review.store import LogStore, ReviewError

from .helpers import log_turn, source


def test_schema_comes_from_the_alembic_migration(db_url):
    store = LogStore(db_url)
    insp = inspect(store.engine)
    assert {"turns", "review_actions", "feedback", "alembic_version"} <= set(insp.get_table_names())
    with store.engine.connect() as c:
        assert c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0001"
    LogStore(db_url).close()  # a second start-up is a no-op upgrade


def test_turn_is_redacted_and_records_what_was_shown(db_url):
    store = LogStore(db_url)
    tid = log_turn(store, "My name is Sara Ali (sara@x.org). Can I work in the UK?",
                   history=[{"role": "user", "content": "hi, my number is +44 7911 123456"},
                            {"role": "assistant", "content": "Hello!"}])
    t = store.get(tid)
    assert t.question == "My name is [name] ([email]). Can I work in the UK?"
    assert t.history[0]["content"] == "hi, my number is [phone]"
    assert t.answer.startswith("You need £1,483") and t.kb_version == "kbv1" and t.model_id == "scripted"
    assert t.sources[0]["id"] == "gb-funds-london" and t.answer_mode == "generate" and t.latency_ms == 12.5
    assert t.status == "pending" and t.topics == ["student_visa"]


def test_queue_puts_the_riskiest_first_and_feedback_reorders_it(db_url):
    store = LogStore(db_url)
    calm = log_turn(store, "What is a CAS?", sources=[source(1, "gb-cas", topic="student_visa", policy=False)])
    edited = log_turn(store, "funds?", changed=True)
    weak = log_turn(store, "Is Dhaka cheap?", sources=[])
    composed = log_turn(store, "visa?", mode="compose")
    order = [t.id for t in store.queue()]
    assert order[0] == edited and order[-1] == calm, order
    assert store.get(weak).risk_reasons == ["no knowledge-base fact was used"]
    assert "a composed answer" in store.get(composed).risk_reasons
    store.add_feedback(store.get(calm).request_id, -1, "wrong, my email is a@b.co")
    t = store.get(calm)
    assert store.queue()[0].id == calm and t.feedback == -1 and t.feedback_comment == "wrong, my email is [email]"
    with pytest.raises(ReviewError, match="rating"):
        store.add_feedback(t.request_id, 5)
    with pytest.raises(ReviewError, match="no logged answer"):
        store.add_feedback("chatcmpl-nope", 1)


def test_review_actions_are_kept_across_a_restart(db_url):
    store = LogStore(db_url)
    a, b, c = (log_turn(store, q) for q in ("q1", "q2", "q3"))
    store.review(a, reviewer="AB", action="approve")
    store.review(b, reviewer="AB", action="edit", corrected_answer="The right answer [1].", note="figure")
    store.review(c, reviewer="CD", action="fact_outdated", fact_id="gb-funds-london", note="changed in 2026")
    store.close()
    again = LogStore(db_url)  # a server restart: a new engine on the same database
    assert [again.get(x).status for x in (a, b, c)] == ["approved", "corrected", "flagged"]
    assert [x.action for x in again.get(b).actions] == ["edit"]
    assert {t.id for t, _ in again.reviewed()} == {a, b}
    assert [q.id for q in again.queue()] == []  # nothing pending
    with pytest.raises(ReviewError, match="corrected_answer"):
        again.review(a, reviewer="AB", action="edit", corrected_answer="  ")
    with pytest.raises(ReviewError, match="not one of this answer's sources"):
        again.review(a, reviewer="AB", action="fact_wrong", fact_id="us-i20")
    with pytest.raises(ReviewError, match="reviewer"):
        again.review(a, reviewer=" ", action="approve")
    with pytest.raises(ReviewError, match="source_url"):
        again.review(a, reviewer="AB", action="propose",
                     proposal={"statement": "x" * 20, "destination": "GB", "topic": "work_rights",
                               "source_url": "http://insecure.example"})


def test_delete_conversation_and_retention(db_url):
    store = LogStore(db_url)
    keep = log_turn(store, "q", conversation="keep")
    gone = [log_turn(store, f"q{i}", conversation="student-42") for i in range(3)]
    store.review(gone[0], reviewer="AB", action="approve")
    store.add_feedback(store.get(gone[1]).request_id, 1)
    assert store.delete_conversation("student-42") == 3
    assert store.count() == 1 and store.get(keep)
    old = log_turn(store, "old question")
    with store.session() as s, s.begin():
        s.execute(update(TurnLog).where(TurnLog.id == old)
                  .values(created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)))
    assert store.purge(30) == 1
    assert store.count() == 1
    with pytest.raises(ReviewError):
        store.purge(0)


def _writer(url: str, n: int, tag: str) -> None:
    store = LogStore(url)
    for i in range(n):
        log_turn(store, f"{tag} question {i}", conversation=tag)
    store.close()


def test_concurrent_workers_lose_no_rows(db_url):
    """Four server worker processes and eight threads write at once; every row arrives."""
    LogStore(db_url).close()  # schema first, as the first worker to start would
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_url, 25, f"proc{i}")) for i in range(4)]
    for p in procs:
        p.start()
    store = LogStore(db_url)
    threads = [threading.Thread(target=lambda i=i: [log_turn(store, f"t{i} {j}", conversation=f"th{i}")
                                                    for j in range(10)]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    assert store.count() == 4 * 25 + 8 * 10
    with store.session() as s:
        assert len(set(s.scalars(select(TurnLog.request_id)))) == 180


def test_rule_edits_count_as_the_fact_check_changing_the_answer():
    """A served answer whose only edits were a rule sentence replaced by the fact (the APS "No, you don't need
    an APS certificate" under an Indian applicant's question) or an invented rule change dropped must reach
    the adviser queue as changed by the fact check; a citation added is bookkeeping and must not."""
    from studyabroadgpt.review.store import assess_risk

    def risk(changes):
        return assess_risk(gate_changes=changes, answer_mode="generate", fallback=False, policy_sensitive=False,
                           top_score=0.05, has_sources=True, feedback=None)

    for action in ("corrected_rule", "removed_rule", "corrected_premise", "degenerate"):
        r = risk([{"action": action}])
        assert r.score == 3.0 and r.reasons == ["the fact check changed the answer (1 edit(s))"], action
    assert risk([{"action": "cited"}, {"action": "dropped_citation"}]).score == 0.0
    # the composed fallback has its own reason; it is not also counted as a fact-check edit
    assert risk([{"action": "composed"}]).score == 0.0
