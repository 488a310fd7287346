"""Issue 14's data items, one by one, through the real readers and the real CLI."""
from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from studyabroadgpt.cli import app
from studyabroadgpt.data.io import DataError
from studyabroadgpt.data.load import load_valid

runner = CliRunner()
GOOD = {"id": "ok", "conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}


def _lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _write(path, *lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_lone_surrogate_is_quarantined_in_clean_and_good_records_are_written(tmp_path):
    src = _write(tmp_path / "s.jsonl", json.dumps(GOOD), '{"conversations": [{"from": "human", "value": "hi \\ud800"}]}')
    r = runner.invoke(app, ["data", "clean", str(src), "--out", str(tmp_path / "c.jsonl"), "--quarantine",
                            str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    assert [c["id"] for c in _lines(tmp_path / "c.jsonl")] == ["ok"]
    [row] = _lines(tmp_path / "q.jsonl")
    assert row["line"] == 2 and row["reasons"][0]["code"] == "json" and "surrogate" in row["reasons"][0]["message"]
    assert "\\ud800" in row["record"]  # kept as found (escaped), so nothing is lost


@pytest.mark.parametrize("payload, words", [("[" * 100_000 + "]" * 100_000, "depth"),
                                            ('{"id": ' + "9" * 5000 + "}", "64 bits")])
def test_deep_nesting_and_huge_integers_are_json_problems(tmp_path, payload, words):
    src = _write(tmp_path / "d.jsonl", json.dumps(GOOD), payload)
    loaded = load_valid(src)
    assert [c.id for c in loaded.conversations] == ["ok"]
    [reason] = loaded.quarantined[0]["reasons"]
    assert reason["line"] == 2 and reason["field"] == "<line>" and words in reason["message"]
    whole = tmp_path / "d.json"
    whole.write_text("[" + payload + "]")
    with pytest.raises(DataError, match=r"d\.json:1: invalid JSON"):
        load_valid(whole)


def test_deep_nesting_in_a_csv_cell(tmp_path):
    src = tmp_path / "c.csv"
    src.write_text("id,conversations\nx," + "[" * 100_000 + "\n", encoding="utf-8")
    loaded = load_valid(src)
    [reason] = loaded.quarantined[0]["reasons"]
    assert reason["line"] == 2 and reason["field"] == "conversations" and "not valid JSON" in reason["message"]


def test_markup_in_role_and_id_is_printed_not_parsed(tmp_path):
    bad = {"id": "[/]", "conversations": [{"from": "[/]", "value": "q"}, {"from": "[bold]gpt", "value": "a"}]}
    src = _write(tmp_path / "[m].jsonl", json.dumps(bad))
    r = runner.invoke(app, ["data", "validate", str(src), "--quarantine", str(tmp_path / "[q].jsonl")])
    assert r.exit_code == 0 and r.exception is None, r.output
    assert "unknown role '[/]'" in r.output and "unknown role '[bold]gpt'" in r.output
    assert "[q].jsonl" in r.output.replace("\n", "")


def test_parquet_with_timestamp_bytes_decimal_round_trips(tmp_path):
    src = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": ["p1"], "conversations": pa.array([GOOD["conversations"]]),
                             "when": pa.array([dt.datetime(2024, 5, 1, 12, 30)], pa.timestamp("us")),
                             "blob": pa.array([b"\xff\x00"], pa.binary()),
                             "fee": pa.array([decimal.Decimal("9535.00")], pa.decimal128(8, 2))}), src)
    for args in (["validate", str(src), "--out", str(tmp_path / "o.parquet")],
                 ["convert", str(src), "--out", str(tmp_path / "hf"), "--format", "hf"]):
        r = runner.invoke(app, ["data", *args])
        assert r.exit_code == 0, r.output
    [conv] = load_valid(tmp_path / "o.parquet").conversations
    assert conv.metadata == {"when": "2024-05-01T12:30:00", "blob": "hex:ff00", "fee": "9535.00"}
    [again] = load_valid(tmp_path / "hf").conversations  # a saved DatasetDict reads back
    assert again.turns == conv.turns


def test_alpaca_fields_of_the_wrong_type_are_rejected_not_stringified(tmp_path):
    src = _write(tmp_path / "a.jsonl", json.dumps({"instruction": ["What is IELTS?"], "output": "A test."}),
                 json.dumps({"instruction": "q", "output": 3}), json.dumps({"instruction": "q", "output": "a"}))
    loaded = load_valid(src)
    assert len(loaded.conversations) == 1 and loaded.conversations[0].turns[0].text == "q"
    assert [(r["reasons"][0]["field"], r["reasons"][0]["message"]) for r in loaded.quarantined] == [
        ("instruction", "must be text, got array"), ("output", "must be text, got number")]


def test_directory_reads_every_json_lines_name_and_reports_the_rest(tmp_path):
    line = json.dumps(GOOD) + "\n"
    (tmp_path / "a.ndjson").write_text(line)
    (tmp_path / "b.jsonlines").write_text(line)
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(line.encode()))
    (tmp_path / "d.jsonl").write_text(line)
    (tmp_path / "notes.txt").write_text("not data")
    loaded = load_valid(tmp_path)
    assert loaded.records == 4 and len(loaded.conversations) == 4
    assert [s.path for s in loaded.skipped] == [str(tmp_path / "notes.txt")]
    r = runner.invoke(app, ["data", "validate", str(tmp_path), "--quarantine", str(tmp_path / "q.jsonl")])
    assert "skipped" in r.output and "notes.txt" in r.output and "files skipped" in r.output


def test_json_file_of_splits_is_read_split_by_split(tmp_path):
    src = tmp_path / "s.json"
    src.write_text(json.dumps({"train": [GOOD, GOOD], "test": [{**GOOD, "id": "t"}]}))
    loaded = load_valid(src)
    assert loaded.records == 3 and not loaded.quarantined
    assert [c.id for c in load_valid(src, split="test").conversations] == ["t"]
    with pytest.raises(DataError, match="no split 'validation'"):
        load_valid(src, split="validation")


def test_bom_then_blank_first_line_is_no_record(tmp_path):
    src = tmp_path / "b.jsonl"
    src.write_bytes(b"\xef\xbb\xbf\n" + json.dumps(GOOD).encode() + b"\n")
    loaded = load_valid(src)
    assert loaded.records == 1 and not loaded.quarantined


def test_load_valid_writes_quarantine_and_accounts_for_every_record(tmp_path):
    src = _write(tmp_path / "x.jsonl", json.dumps(GOOD), "{bad", json.dumps({"messages": []}))
    loaded = load_valid(src, quarantine=tmp_path / "q" / "x.q.jsonl")
    assert loaded.records == 3 == len(loaded.conversations) + loaded.rejected
    assert loaded.quarantine_path == tmp_path / "q" / "x.q.jsonl"
    assert [r["line"] for r in _lines(loaded.quarantine_path)] == [2, 3]
    assert load_valid(_write(tmp_path / "y.jsonl", json.dumps(GOOD)), quarantine=tmp_path / "none.jsonl"
                      ).quarantine_path is None and not (tmp_path / "none.jsonl").exists()


def test_exit_codes(tmp_path, monkeypatch):
    """0 ok, 1 rejected under --strict, 2 usage/config/unreadable source, 3 internal error with a log."""
    monkeypatch.setenv("STUDYABROADGPT_LOG_DIR", str(tmp_path / "logs"))
    good = _write(tmp_path / "g.jsonl", json.dumps(GOOD))
    bad = _write(tmp_path / "b.jsonl", json.dumps(GOOD), "{bad")
    q = ["--quarantine", str(tmp_path / "q.jsonl")]
    assert runner.invoke(app, ["data", "validate", str(good), "--strict"]).exit_code == 0
    assert runner.invoke(app, ["data", "validate", str(bad), *q]).exit_code == 0
    for cmd in (["validate", str(bad)], ["clean", str(bad), "--out", str(tmp_path / "c.jsonl")],
                ["split", str(bad), "--out-dir", str(tmp_path / "s")]):
        assert runner.invoke(app, ["data", *cmd, "--strict", *q]).exit_code == 1, cmd
    r = runner.invoke(app, ["data", "validate", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2 and "missing.jsonl: no such file" in r.output
    assert runner.invoke(app, ["data", "split", str(good), "--out-dir", str(tmp_path), "--test-size", "2"]
                         ).exit_code == 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seq_len: [/x]\n")
    r = runner.invoke(app, ["train", "--config", str(cfg), "--plan"])
    assert r.exit_code == 2 and "c.yaml" in r.output and "seq_len" in r.output

    def boom(*a, **k):
        raise ZeroDivisionError("[/] a bug")

    monkeypatch.setattr("studyabroadgpt.data.dedup.dedup", boom)
    r = runner.invoke(app, ["data", "dedup", str(good), "--out", str(tmp_path / "d.jsonl")])
    assert r.exit_code == 3
    assert "internal error: ZeroDivisionError: [/] a bug" in r.output and "Traceback" not in r.output
    [log] = (tmp_path / "logs").glob("sagpt-*.log")
    assert "Traceback" in log.read_text() and "ZeroDivisionError" in log.read_text() and str(log) in \
        r.output.replace("\n", "")


def test_card_carries_the_kb_version_of_the_data_not_the_installed_kb(tmp_path):
    conv = {**GOOD, "metadata": {"kb_version": "2099-01-01-test"}}
    src = _write(tmp_path / "train.jsonl", json.dumps(conv))
    r = runner.invoke(app, ["data", "card", str(src), "--out", str(tmp_path / "card")])
    assert r.exit_code == 0, r.output
    assert "Knowledge-base version: `2099-01-01-test`" in (tmp_path / "card" / "README.md").read_text()
