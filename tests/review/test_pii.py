from pathlib import Path

import pytest
import yaml

from studyabroadgpt.review.pii import find_pii, redact

CASES = yaml.safe_load((Path(__file__).parent / "pii_corpus.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:40] for c in CASES])
def test_corpus(case):
    out = redact(case["text"])
    for gone in case["redact"]:
        assert gone not in out, f"{gone!r} survived: {out!r}"
    for kept in case["keep"]:
        assert kept in out, f"{kept!r} was redacted: {out!r}"
    assert out.count("[") - case["text"].count("[") == len(case["redact"]), out


def test_tags_say_what_was_removed():
    kinds = [r.kind for r in find_pii("My name is Sara Ali, sara@x.org, +44 7911 123456, passport K1234567")]
    assert kinds == ["name", "email", "phone", "passport number"]
    assert redact("email sara@x.org") == "email [email]"


def test_text_without_pii_is_unchanged():
    text = "Can I bring my wife to the UK on a student visa for a one-year master's course?"
    assert redact(text) == text
