import random
import re
import string
import unicodedata
from collections import Counter

from studyabroadgpt.data.clean import clean_record, clean_text
from studyabroadgpt.data.dedup import dedup
from studyabroadgpt.data.io import iter_raw
from studyabroadgpt.data.load import load_valid
from studyabroadgpt.data.schema import Conversation, Turn
from studyabroadgpt.data.split import leak_groups, split


def test_clean_counts_every_change(broken_dir):
    changes = Counter()
    [rec] = list(iter_raw(broken_dir / "messy.jsonl"))
    conv, problems = clean_record(rec, changes)
    assert problems == []
    assert [t.role for t in conv.turns] == ["user", "assistant"]
    assert conv.turns[0].text == "Café prices in Dublin?\n\nThanks\n\nAlso rent?"
    assert conv.turns[1].text == "Rent varies.\n\nSee the [1] source."
    assert changes["unicode_nfc"] == 1 and changes["control_chars"] >= 2
    assert changes["merged_turns"] == 2 and changes["empty_turn_dropped"] == 1
    assert changes["role_alias"] >= 4 and changes["whitespace"] >= 1


def _clean_text_reference(text, changes):
    """clean_text as it was before its fast paths: every regex pass on every text."""
    control = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200c\u200d\u2060\ufeff]")
    out = unicodedata.normalize("NFC", text)
    if out != text:
        changes["unicode_nfc"] += 1
    fixed = control.sub("", out.replace("\r\n", "\n").replace("\r", "\n"))
    if fixed != out:
        changes["control_chars"] += 1
    out = fixed
    fixed = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip(" \t") for line in out.split("\n"))).strip()
    if fixed != out:
        changes["whitespace"] += 1
    return fixed


def test_clean_text_fast_paths_equal_the_regex_version():
    rng = random.Random(3)
    pieces = ["word", " ", "  ", "\t", "\n", "\n\n\n", "\r\n", "\r", "\x00", "\x07", "\x0b", "\x1f", "\x7f", "\x85",
              "\u200b", "\ufeff", "e\u0301", "é", "Ü", " \n", "\t\n", "\n \n\n", "£1,200", "-"]
    texts = ["", " ", "\n\n\n", "a \t", "a\n\n\n   ", "\r", "plain ascii answer."]
    texts += ["".join(rng.choices(pieces, k=rng.randint(1, 30))) for _ in range(4000)]
    fast, ref = Counter(), Counter()
    for t in texts:
        assert clean_text(t, fast) == _clean_text_reference(t, ref), repr(t)
        assert fast == ref, repr(t)
    assert fast["control_chars"] and fast["whitespace"] and fast["unicode_nfc"]  # every branch was taken


def test_clean_still_quarantines_what_it_cannot_fix(broken_dir):
    changes = Counter()
    results = [clean_record(r, changes) for r in iter_raw(broken_dir / "bad_roles.jsonl")]
    kept = [c for c, _ in results if c is not None]
    # merging fixes "two users"; dropping the empty user turn leaves an assistant-first record → rejected
    assert {c.id for c in kept} == {"two-users", "valid-with-system"}
    assert len(results) == 9


def _conv(i, q, a, topic=None):
    return Conversation(id=str(i), turns=[Turn(role="user", text=q), Turn(role="assistant", text=a)], topic=topic)


ANSWER = ("To apply you need an offer, proof of funds for tuition and living costs, an English test result and "
          "a valid passport. Book your appointment early because processing takes several weeks in busy months. ")


def test_dedup_exact_and_near():
    convs = [
        _conv(1, "How do I apply for a student visa?", ANSWER * 3),
        _conv(2, "How do I apply for a student visa?", ANSWER * 3),                  # exact duplicate
        _conv(3, "How do I apply for a student visa??", ANSWER * 3 + " Good luck!"),  # near duplicate
        _conv(4, "What does rent cost in Dublin?", "Rent in Dublin is high; budget carefully for a room."),
    ]
    res = dedup(convs, threshold=0.8)
    assert [c.id for c in res.kept] == ["1", "4"]
    assert res.exact_removed == 1 and res.near_removed == 1
    assert res.clusters == [{"kept": "1", "removed": ["2", "3"], "reasons": ["exact", "near"]}]


VOCAB = ["".join(random.Random(k).choices(string.ascii_lowercase, k=7)) for k in range(400)]


def test_split_is_deterministic_stratified_and_leak_free():
    unis = ["Oxford", "Cambridge", "Imperial", "UCL", "Edinburgh", "Manchester"]
    convs = []
    for i, uni in enumerate(unis):  # the same question for another university: one leak group
        convs.append(_conv(f"sop-{i}", f"How do I write a strong SOP for MBA at {uni}?", f"Answer {i} " * 30, "sop"))
    topics = ["visa", "funds", "tests", "housing"]
    rng = random.Random(0)
    for i in range(60):
        t = topics[i % 4]
        words = " ".join(rng.choice(VOCAB) for _ in range(8))  # unrelated questions
        convs.append(_conv(f"{t}-{i}", f"{words} {t}?", f"Different answer {i} " +
                           " ".join(f"tok{i}_{k}" for k in range(20)), t))
    a = split(convs, test_size=0.2, seed=3)
    b = split(convs, test_size=0.2, seed=3)
    assert [c.id for c in a.test] == [c.id for c in b.test]
    assert len(a.train) + len(a.test) == len(convs)
    sop_sides = {c.id.startswith("sop") for c in a.test}
    sop_in_test = sum(c.id.startswith("sop") for c in a.test)
    assert sop_in_test in (0, 6)  # the whole group lands on one side
    assert a.cross_pairs == 0 and a.multi_member_groups >= 1
    for t in topics:  # stratified: each topic ~20% in test
        n_test = sum(c.topic == t for c in a.test)
        assert 2 <= n_test <= 4
    assert sop_sides  # test split is non-empty
    uf, pairs = leak_groups(convs)
    test_ids = {c.id for c in a.test}
    assert not [p for p in pairs if (convs[p[0]].id in test_ids) != (convs[p[1]].id in test_ids)]


def test_sample_split_keeps_same_question_together(sample_path):
    convs = load_valid(sample_path).conversations
    res = split(convs, test_size=0.15, seed=42)
    assert res.multi_member_groups >= 1 and res.cross_pairs == 0
    assert len(res.train) + len(res.test) == 8 and res.test
