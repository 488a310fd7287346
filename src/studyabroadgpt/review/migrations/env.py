"""Alembic environment: the caller (``review.db.upgrade``) hands over an open connection."""
from __future__ import annotations

from alembic import context

from studyabroadgpt.review.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` run by hand with -x url=...
    from studyabroadgpt.review.db import connect

    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("run migrations through `sagpt review migrate --db URL`, or pass -x url=...")
    with connect(url).begin() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
