"""Conversation-log tables and the database connection (SQLite by default, PostgreSQL by URL).

The schema is created and upgraded only by the Alembic migrations in ``migrations/`` (never by
``metadata.create_all``), so a deployment that has been running for months upgrades in place.
"""
from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class LogDBError(Exception):
    """A log database URL that cannot be opened or migrated."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class TurnLog(Base):
    """One answered question: what the student asked (redacted) and exactly what they were shown."""

    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)       # the completion id the client saw
    conversation_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    question: Mapped[str] = mapped_column(Text)                           # PII-redacted
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)        # earlier messages, redacted
    answer: Mapped[str] = mapped_column(Text)                             # as shown (after the gate)
    raw_text: Mapped[str] = mapped_column(Text)                           # the model's own text
    answer_mode: Mapped[str] = mapped_column(String(16), default="generate")
    gate_changed: Mapped[bool] = mapped_column(Boolean, default=False)
    gate_changes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sources: Mapped[list[Any]] = mapped_column(JSON, default=list)         # id, index, topic, score, cited...
    topics: Mapped[list[Any]] = mapped_column(JSON, default=list)
    kb_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_id: Mapped[str] = mapped_column(String(256))
    adapter_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    top_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    policy_sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    risk: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    risk_reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    feedback: Mapped[int | None] = mapped_column(Integer, nullable=True)   # latest student rating: +1 / -1
    feedback_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending|approved|corrected|flagged

    actions: Mapped[list["ReviewAction"]] = relationship(back_populates="turn", cascade="all, delete-orphan",
                                                         order_by="ReviewAction.id")


class ReviewAction(Base):
    """One adviser decision on a turn; never updated, only appended (the audit trail of the review)."""

    __tablename__ = "review_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewer: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))     # approve | edit | fact_wrong | fact_outdated | propose
    corrected_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    fact_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    proposal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    kb_version: Mapped[str | None] = mapped_column(String(64), nullable=True)

    turn: Mapped[TurnLog] = relationship(back_populates="actions")


class Feedback(Base):
    """A student's thumbs up / down on an answer, with an optional comment."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 (the driver we install); a bare path means a SQLite file."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def connect(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL mode so several server workers can write at once."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises ArgumentError with a terse message
        raise LogDBError(f"--log-db {url!r}: not a database URL ({exc})") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # timeout: a writer waits for another worker's transaction instead of failing with "database is locked".
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")     # readers never block the writer, workers share the file
            cur.execute("PRAGMA synchronous=NORMAL")   # durable at each WAL checkpoint; safe with WAL
            cur.execute("PRAGMA foreign_keys=ON")      # deleting a conversation deletes its reviews
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrations_dir() -> Path:
    return Path(str(resources.files("studyabroadgpt") / "review" / "migrations"))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` with Alembic (idempotent; safe for several workers)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except Exception as exc:  # noqa: BLE001 - connection refused, bad credentials, read-only file...
        raise LogDBError(f"log database {engine.url.render_as_string(hide_password=True)}: {exc}") from exc
