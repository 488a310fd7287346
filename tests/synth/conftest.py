"""Synthesis fixtures: the shipped knowledge base and one small synthesised dataset shared by the tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def kb():
    from studyabroadgpt.kb.store import load_kb

    return load_kb()


@pytest.fixture(scope="session")
def synth_result(kb):
    from studyabroadgpt.synth.generate import synthesize

    return synthesize(kb, 240, seed=7)
