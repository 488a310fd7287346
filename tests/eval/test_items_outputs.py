"""Prompt sets and outputs files: every supported shape reads, every bad input names file, line and field."""
from __future__ import annotations

import json

import pytest

from studyabroadgpt.data.io import DataError
from studyabroadgpt.eval.items import load_items
from studyabroadgpt.eval.outputs import Answer, align, read_outputs, write_outputs


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_prompt_csv_and_jsonl(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text('id,prompt,reference\n1,"How much are UK visa fees?",About 500 GBP\n2,Hi,\n', encoding="utf-8")
    items = load_items(csv)
    assert [i.id for i in items] == ["1", "2"]
    assert items[0].messages == [{"role": "user", "content": "How much are UK visa fees?"}]
    assert items[0].reference == "About 500 GBP" and items[1].reference is None
    js = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "q1"}, {"id": "b", "prompt": "q2", "reference": "r"}])
    assert [i.prompt for i in load_items(js, limit=1)] == ["q1"]


def test_prompt_file_errors_name_line_and_field(tmp_path):
    bad = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "q1"}, {"id": "b", "question": "q2"}])
    with pytest.raises(DataError, match=r"p\.jsonl:2: missing column 'prompt'"):
        load_items(bad)
    empty = _jsonl(tmp_path / "e.jsonl", [{"id": "a", "prompt": "  "}])
    with pytest.raises(DataError, match=r"e\.jsonl:1: field 'prompt' is empty"):
        load_items(empty)
    listy = _jsonl(tmp_path / "l.jsonl", [{"id": "a", "prompt": ["not", "text"]}])
    with pytest.raises(DataError, match=r"l\.jsonl:1: field 'prompt' must be text, got list"):
        load_items(listy)
    dup = _jsonl(tmp_path / "d.jsonl", [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}])
    with pytest.raises(DataError, match="duplicate ids"):
        load_items(dup)


def test_conversations_first_and_every_turn(tmp_path):
    conv = {"id": "c1", "conversations": [
        {"from": "system", "value": "You advise students."},
        {"from": "human", "value": "Q1?"}, {"from": "gpt", "value": "A1."},
        {"from": "human", "value": "Q2?"}, {"from": "gpt", "value": "A2."}]}
    path = _jsonl(tmp_path / "c.jsonl", [conv])
    first = load_items(path, mode="first")
    assert len(first) == 1 and first[0].id == "c1" and first[0].reference == "A1."
    assert first[0].messages[0]["role"] == "system"
    every = load_items(path, mode="every")
    assert [i.id for i in every] == ["c1#1", "c1#2"]
    assert every[1].messages[-3:] == [{"role": "user", "content": "Q1?"}, {"role": "assistant", "content": "A1."},
                                      {"role": "user", "content": "Q2?"}]
    assert every[1].reference == "A2."


def test_shared_sample_reads(sample_path):
    items = load_items(sample_path)
    assert len(items) == 8 and all(i.reference for i in items)


def test_outputs_roundtrip_and_alignment(tmp_path):
    rows = [Answer(id=str(i), prompt=f"q{i}", response=f"r{i}", system=s, reference="ref", latency_s=0.5,
                   new_tokens=3, truncated=i == 1) for s in ("base", "tuned") for i in range(3)]
    for suffix in (".jsonl", ".csv"):
        path = write_outputs(rows, tmp_path / f"out{suffix}")
        systems = read_outputs([path])
        assert list(systems) == ["base", "tuned"]
        assert systems["tuned"][1].truncated is True and systems["base"][0].latency_s == 0.5
    # alignment reorders by the first system's id order
    shuffled = {"base": systems["base"], "tuned": list(reversed(systems["tuned"]))}
    ids, aligned = align(shuffled)
    assert [a.id for a in aligned["tuned"]] == ids == ["0", "1", "2"]


def test_outputs_without_system_column_use_file_name(tmp_path):
    a = _jsonl(tmp_path / "mine.jsonl", [{"id": "1", "prompt": "q", "response": "r"}])
    b = _jsonl(tmp_path / "theirs.jsonl", [{"id": "1", "prompt": "q", "response": "s"}])
    assert list(read_outputs([a, b])) == ["mine", "theirs"]


def test_outputs_bad_input_is_a_clear_error(tmp_path):
    missing = _jsonl(tmp_path / "m.jsonl", [{"id": "1", "prompt": "q"}])
    with pytest.raises(DataError, match=r"m\.jsonl:1: missing column\(s\) response"):
        read_outputs([missing])
    empty = _jsonl(tmp_path / "e.jsonl", [{"id": "1", "prompt": "q", "response": ""}])
    with pytest.raises(DataError, match=r"e\.jsonl:1: empty response for id '1'"):
        read_outputs([empty])
    assert read_outputs([empty], allow_empty=True)["e"][0].response == ""
    dup = _jsonl(tmp_path / "d.jsonl", [{"id": "1", "prompt": "q", "response": "a"},
                                        {"id": "1", "prompt": "q", "response": "b"}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: id '1' .* already appeared at .*d\.jsonl:1"):
        read_outputs([dup])


def test_structured_cells_read_from_jsonl_and_csv_text_and_bad_ones_name_row_and_field(tmp_path):
    """``checks`` (prompt sets and outputs) and ``sources`` (outputs) hold an object / a list: the value itself
    in JSONL, its JSON text in a CSV cell; anything else is a DataError naming file, line and field."""
    csv = tmp_path / "o.csv"
    csv.write_text('id,prompt,response,checks,sources\n1,q,r,"{""destination"": ""GB""}","[""gb.work.hours""]"\n'
                   "2,q,r,,\n", encoding="utf-8")
    got = read_outputs([csv])["o"]
    assert got[0].checks == {"destination": "GB"} and got[0].sources == ["gb.work.hours"]
    assert got[1].checks is None and got[1].sources is None
    assert load_items(_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "q", "checks": {}}]))[0].checks is None
    for name, row, needle in [
        ("c.jsonl", {"checks": "{not json"}, r"c\.jsonl:1: field 'checks' is not valid JSON \(it must hold an object\)"),
        ("k.jsonl", {"checks": [1]}, r"k\.jsonl:1: field 'checks' must be an object, got list"),
        ("s.jsonl", {"sources": "gb.work.hours"}, r"s\.jsonl:1: field 'sources' is not valid JSON"),
        ("t.jsonl", {"sources": {"id": 1}}, r"t\.jsonl:1: field 'sources' must be a list of fact ids, got dict"),
    ]:
        path = _jsonl(tmp_path / name, [{"id": "1", "prompt": "q", "response": "r", **row}])
        with pytest.raises(DataError, match=needle):
            read_outputs([path])
    with pytest.raises(DataError, match=r"q\.jsonl:1: field 'checks' must be an object, got str"):
        load_items(_jsonl(tmp_path / "q.jsonl", [{"id": "a", "prompt": "q", "checks": '"text"'}]))


def test_real_style_prompt_rows_name_line_and_field(tmp_path):
    from studyabroadgpt.eval.prompts import CATEGORIES, load_real_style, read_prompt_rows

    rows = load_real_style()
    assert len(rows) >= 80 and {r["category"] for r in rows} <= set(CATEGORIES)
    good = {"id": "a", "prompt": "Can I work in the UK?", "category": "policy_rule", "expect": "20 hours"}
    for name, text, needle in [
        ("j.jsonl", json.dumps(good) + "\n{not json\n", r"j\.jsonl:2: <line>: invalid JSON"),
        ("o.jsonl", "[1, 2]\n", r"o\.jsonl:1: <record>: expected a JSON object, got array"),
        ("e.jsonl", json.dumps({**good, "expect": " "}) + "\n", r"e\.jsonl:1: field 'expect' missing or empty"),
        ("c.jsonl", "\n" + json.dumps({**good, "category": "gossip"}) + "\n",
         r"c\.jsonl:2: field 'category': unknown 'gossip'; use one of soft_advice"),
    ]:
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=needle):
            read_prompt_rows(tmp_path / name)


def test_mismatched_ids_between_systems_are_listed(tmp_path):
    a = _jsonl(tmp_path / "a.jsonl", [{"id": i, "prompt": "q", "response": "r"} for i in ("1", "2", "3")])
    b = _jsonl(tmp_path / "b.jsonl", [{"id": i, "prompt": "q", "response": "r"} for i in ("1", "2", "4")])
    with pytest.raises(DataError, match=r"only in 'a': \[\"3\"\]; only in 'b': \[\"4\"\]"):
        align(read_outputs([a, b]))
