"""Loading, validating and date-reviewing knowledge bases."""
from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest

from studyabroadgpt.kb.schema import KBError
from studyabroadgpt.kb.store import DEFAULT_KB_DIR, check_kb, describe_value, load_kb

from .helpers import GOOD_FACT, write_kb_file


def test_fixture_kb_loads_with_index_and_fingerprint(fixture_kb):
    assert len(fixture_kb.facts) == 22
    assert fixture_kb.by_id["gb.funds.maintenance"].destination == "GB"
    assert set(fixture_kb.destinations) == {"GB", "US", "CA", "AU", "DE", "IE"}
    assert len(fixture_kb.version) == 16


def test_version_changes_with_content(tmp_path):
    a = load_kb(write_kb_file(tmp_path, "a.yaml", GOOD_FACT))
    b = load_kb(write_kb_file(tmp_path, "b.yaml", GOOD_FACT.replace("amount: 20", "amount: 25")))
    again = load_kb(write_kb_file(tmp_path, "c.yaml", GOOD_FACT))
    assert a.version != b.version
    assert a.version == again.version


def test_directory_jsonl_and_mapping_with_defaults(tmp_path):
    d = tmp_path / "kb"
    d.mkdir()
    write_kb_file(d, "gb.yaml", GOOD_FACT)
    fact = load_kb(d / "gb.yaml").facts[0].model_dump(mode="json")
    fact["id"] = "gb.work.hours.copy"
    (d / "more.jsonl").write_text(json.dumps(fact) + "\n")
    body = textwrap.indent(GOOD_FACT.replace("  destination: GB\n", "").replace("gb.work.hours", "gb.defaults"), "  ")
    write_kb_file(d, "mapped.yaml", "defaults:\n  destination: GB\nfacts:\n" + body)
    kb = load_kb(d)
    assert sorted(kb.by_id) == ["gb.defaults", "gb.work.hours", "gb.work.hours.copy"]
    assert kb.by_id["gb.defaults"].destination == "GB"


def test_schema_error_names_file_item_line_and_field(tmp_path):
    bad = GOOD_FACT + GOOD_FACT.replace("gb.work.hours", "gb.second").replace("as_of: 2025-06-01", "as_of: June 2025")
    path = write_kb_file(tmp_path, "bad.yaml", bad)
    with pytest.raises(KBError) as err:
        load_kb(path)
    msg = str(err.value)
    assert "bad.yaml:11" in msg and "item 2" in msg and "as_of" in msg and "gb.second" in msg


def test_bad_yaml_and_http_url_and_duplicate_id(tmp_path):
    with pytest.raises(KBError, match=r"broken.yaml:\d+: invalid YAML"):
        load_kb(write_kb_file(tmp_path, "broken.yaml", "- id: x\n  statement: [unclosed\n"))
    with pytest.raises(KBError, match="https"):
        load_kb(write_kb_file(tmp_path, "http.yaml", GOOD_FACT.replace("https://", "http://")))
    with pytest.raises(KBError, match="duplicate entry id 'gb.work.hours'"):
        load_kb(write_kb_file(tmp_path, "dup.yaml", GOOD_FACT + GOOD_FACT))
    with pytest.raises(KBError, match="no such"):
        load_kb(tmp_path / "missing")


def test_jsonl_error_names_line(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"id": "x"}\n')
    with pytest.raises(KBError, match=r"f.jsonl:1 item 1"):
        load_kb(path)


def test_check_reports_every_problem(tmp_path):
    conflicting = GOOD_FACT.replace("gb.work.hours", "gb.work.other").replace("amount: 20", "amount: 30")
    future = GOOD_FACT.replace("gb.work.hours", "gb.future").replace("as_of: 2025-06-01", "as_of: 2030-01-01") \
        .replace("review_after: 2026-06-01", "review_after: 2031-01-01").replace("work.term.hours", "x.y")
    broken = GOOD_FACT.replace("gb.work.hours", "gb.broken").replace("topic: work_rights", "topic: weather")
    facts, issues = check_kb(write_kb_file(tmp_path, "kb.yaml", GOOD_FACT + conflicting + future + broken + GOOD_FACT),
                             today=dt.date(2026, 1, 1))
    messages = [str(i) for i in issues]
    assert len(facts) == 3
    assert any("conflicts with gb.work.hours" in m and "30 hours per week vs 20 hours per week" in m
               for m in messages)
    assert any("as_of" in m and "future" in m for m in messages)
    assert any("topic" in m and "weather" in m for m in messages)
    assert any("duplicate entry id" in m for m in messages)


def test_stale_lists_facts_past_review(fixture_kb):
    due = fixture_kb.stale(dt.date(2026, 2, 1))
    assert {f.id for f in due} == {"gb.funds.maintenance", "gb.psw.graduate-route", "us.psw.opt",
                                   "de.funds.blocked-account"}
    assert fixture_kb.stale(dt.date(2025, 7, 1)) == []


def test_describe_value(fixture_kb):
    values = {v.key: v for f in fixture_kb.facts for v in f.values}
    assert describe_value(values["funds.london.monthly"]) == "GBP 1,483 per month"
    assert describe_value(values["english.ielts.overall"]) == "IELTS 6.5"
    assert describe_value(values["work.off_campus.hours"]) == "24 hours per week"


def test_shipped_kb_is_valid_when_present():
    if not any(DEFAULT_KB_DIR.glob("*.yaml")):
        pytest.skip("the shipped knowledge base has not been written yet")
    entries, issues = check_kb()
    errors = [str(i) for i in issues if i.severity == "error"]
    assert not errors, errors[:10]
    kb = load_kb()
    assert len(kb.entries) == len(entries) and kb.facts and kb.guidance
