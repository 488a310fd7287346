"""Readers, validation and quarantine on real and deliberately broken files."""
import json

import pandas as pd
import pytest

from studyabroadgpt.data.io import DataError, iter_raw, write_conversations, write_dataset_dict
from studyabroadgpt.data.load import load_valid
from studyabroadgpt.data.validate import validate_record


def _problems(path, **kw):
    out = {}
    for rec in iter_raw(path):
        conv, problems = validate_record(rec, **kw)
        out[rec.line] = (conv, problems)
    return out


def test_real_sample_is_valid(sample_path):
    loaded = load_valid(sample_path)
    convs, bad = loaded.conversations, loaded.quarantined
    assert len(convs) == 8 and bad == []
    assert all(c.turns[0].role == "user" and c.turns[-1].role == "assistant" for c in convs)
    assert {len(c.turns) for c in convs} <= {4, 6}


def test_bad_json_lines_name_file_line_and_keep_good_records(broken_dir):
    path = broken_dir / "bad_json.jsonl"
    res = _problems(path)
    assert res[1][0] is not None and res[6][0] is not None          # good records on lines 1 and 6
    assert res[2][1][0].code == "json" and res[2][1][0].field == "<line>"
    assert str(res[2][1][0]).startswith(f"{path}:2: <line>: invalid JSON")
    assert res[4][1][0].code == "type"                                # a JSON array, not an object
    assert res[5][1][0].code == "format"                              # no known format
    assert 3 not in res                                               # blank line is not a record


def test_role_problems_are_reported_per_field(broken_dir):
    path = broken_dir / "bad_roles.jsonl"
    res = {json.loads(line)["id"]: n for n, line in enumerate(path.read_text().splitlines(), 1)}
    probs = _problems(path)
    field = lambda i: [(p.field, p.code) for p in probs[res[i]][1]]  # noqa: E731
    assert ("conversations[1].role", "role") in field("unknown-role")
    assert ("conversations[0].role", "order") in field("assistant-first")
    assert ("conversations[1].role", "alternation") in field("two-users")
    assert ("conversations[0].text", "empty") in field("empty-user")
    assert ("conversations[0].role", "order") in field("last-user")
    assert ("conversations[0].from", "missing") in field("missing-role")
    assert ("conversations[0].value", "type") in field("text-not-string")
    assert ("conversations", "type") in field("not-a-list")
    assert probs[res["valid-with-system"]][0] is not None


def test_wrong_encoding_is_quarantined_not_fatal(broken_dir):
    loaded = load_valid(broken_dir / "latin1.jsonl")
    convs, bad = loaded.conversations, loaded.quarantined
    assert [c.id for c in convs] == ["utf8-ok"]
    assert bad[0]["line"] == 2 and bad[0]["reasons"][0]["code"] == "encoding"
    assert "Z" in bad[0]["record"]  # the raw text is kept so nothing is lost


def test_too_long_records_are_rejected(sample_path):
    loaded = load_valid(sample_path)
    convs, bad = loaded.conversations, loaded.quarantined
    res = _problems(sample_path, max_chars=5000)
    too_long = [p for _, ps in res.values() for p in ps if p.code == "too_long"]
    assert too_long and "characters > max 5,000" in too_long[0].message


def test_formats_messages_alpaca_parquet_dir(broken_dir, tmp_path):
    loaded = load_valid(broken_dir / "messages.json")
    convs, bad = loaded.conversations, loaded.quarantined
    assert [c.id for c in convs] == ["m1"] and convs[0].turns[0].role == "system"
    assert bad[0]["reasons"][0]["field"] == "messages[1].text"
    loaded = load_valid(broken_dir / "alpaca.csv")
    convs, bad = loaded.conversations, loaded.quarantined
    assert convs[0].messages()[0] == {"role": "user", "content": "Explain the Graduate Route."}
    assert bad[0]["line"] == 3 and bad[0]["reasons"][0]["field"] == "output.text"
    # writers round-trip through Parquet, JSONL (messages) and a DatasetDict
    write_conversations(convs, tmp_path / "x.parquet")
    assert load_valid(tmp_path / "x.parquet").conversations[0].messages() == convs[0].messages()
    write_conversations(convs, tmp_path / "d" / "x.jsonl", fmt="messages")
    assert "messages" in json.loads((tmp_path / "d" / "x.jsonl").read_text().splitlines()[0])
    assert load_valid(tmp_path / "d").conversations[0].turns == convs[0].turns
    import datasets

    write_dataset_dict({"train": convs, "test": convs}, tmp_path / "dd")
    dd = datasets.load_from_disk(str(tmp_path / "dd"))
    assert dd["train"][0]["messages"][1]["content"] == "It lets graduates stay to work."


def test_hub_dataset_path_through_load_dataset(sample_path, tmp_path, monkeypatch):
    """A Hub id goes through datasets.load_dataset; offline, the same code reads a local dataset script dir."""
    import datasets

    seen = {}
    real = datasets.load_dataset

    def fake_hub(name, split=None, **kw):
        seen["name"] = name  # the real loader is called on local files with the same signature
        return real("json", data_files=str(sample_path), split=split or "train")

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    loaded = load_valid("millat/StudyAbroadGPT-Dataset")
    convs, bad = loaded.conversations, loaded.quarantined
    assert seen["name"] == "millat/StudyAbroadGPT-Dataset" and len(convs) == 8 and not bad


def test_unreadable_sources_raise_clear_errors(broken_dir, tmp_path):
    with pytest.raises(DataError, match=r"broken.json:2: invalid JSON"):
        list(iter_raw(broken_dir / "broken.json"))
    with pytest.raises(DataError, match="no such file"):
        list(iter_raw(tmp_path / "nope.jsonl"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type"):
        list(iter_raw(tmp_path / "x.txt"))
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "t.csv", index=False)
    loaded = load_valid(tmp_path / "t.csv")
    convs, bad = loaded.conversations, loaded.quarantined
    assert not convs and bad[0]["reasons"][0]["code"] == "format"
