"""The adviser review loop: what students were told, reviewed by advisers, fed back into the KB and phase-2 data.

``db`` (SQLAlchemy 2 tables, Alembic migrations) → ``store`` (log a turn, queue by risk, record reviewer
actions, retention) → ``web`` (the ``/review`` page and its API behind an adviser key) → ``export`` (approved and
corrected answers as a curated ShareGPT training set) and ``proposals`` (fact changes as a YAML patch that
``kb validate`` checks) → ``stats``. PII is redacted by ``pii`` before anything is stored.
"""
