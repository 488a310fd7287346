"""conversation log: turns, review actions, feedback

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("conversation_id", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("history", sa.JSON, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("raw_text", sa.Text, nullable=False),
        sa.Column("answer_mode", sa.String(16), nullable=False),
        sa.Column("gate_changed", sa.Boolean, nullable=False),
        sa.Column("gate_changes", sa.JSON, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("kb_version", sa.String(64), nullable=True),
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("adapter_id", sa.String(512), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("top_score", sa.Float, nullable=True),
        sa.Column("policy_sensitive", sa.Boolean, nullable=False),
        sa.Column("risk", sa.Float, nullable=False, index=True),
        sa.Column("risk_reasons", sa.JSON, nullable=False),
        sa.Column("feedback", sa.Integer, nullable=True),
        sa.Column("feedback_comment", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
    )
    op.create_table(
        "review_actions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("turn_id", sa.Integer, sa.ForeignKey("turns.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("corrected_answer", sa.Text, nullable=True),
        sa.Column("fact_id", sa.String(128), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("proposal", sa.JSON, nullable=True),
        sa.Column("kb_version", sa.String(64), nullable=True),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("turn_id", sa.Integer, sa.ForeignKey("turns.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("review_actions")
    op.drop_table("turns")
