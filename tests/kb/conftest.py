"""KB fixtures: the small fixture knowledge base and one retriever over it (the encoder loads once)."""
from __future__ import annotations

from pathlib import Path

import pytest

FIXTURE_KB = Path(__file__).parent / "fixtures" / "facts.yaml"


@pytest.fixture(scope="session")
def fixture_kb_path() -> Path:
    return FIXTURE_KB


@pytest.fixture(scope="session")
def fixture_kb():
    from studyabroadgpt.kb.store import load_kb

    return load_kb(FIXTURE_KB)


@pytest.fixture(scope="session")
def fixture_retriever(fixture_kb, tmp_path_factory):
    from studyabroadgpt.kb.search import Retriever

    return Retriever.from_kb(fixture_kb, index_dir=tmp_path_factory.mktemp("kb-index") / "idx")


@pytest.fixture(scope="session")
def fixture_auditor(fixture_kb):
    from studyabroadgpt.kb.audit import Auditor

    return Auditor(fixture_kb)
