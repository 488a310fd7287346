"""Bad inputs to `sagpt train` give one clear error before the model loads, and bad records are quarantined."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from studyabroadgpt.cli import app
from studyabroadgpt.config import ConfigError
from studyabroadgpt.data.io import DataError

from .conftest import make_convs

BAD_LINES = [
    "{not json",
    json.dumps({"conversations": []}),
    json.dumps({"conversations": [{"from": "human", "value": "only a question"}]}),
    json.dumps({"conversations": [{"from": "wizard", "value": "hi"}, {"from": "gpt", "value": "hello"}]}),
    json.dumps({"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": ""}]}),
    json.dumps({"messages": "not a list"}),
    json.dumps([1, 2, 3]),
    json.dumps({"conversations": [{"from": "human", "value": 5}, {"from": "gpt", "value": ["x"]}]}),
    json.dumps({"conversations": [{"from": "gpt", "value": "answer first"}]}),
    json.dumps("just a string"),
    json.dumps({"conversations": [{"value": "no role"}, {"from": "gpt", "value": "x"}]}),
    json.dumps({"id": 3}),
]


def invoke(*args: str):
    return CliRunner().invoke(app, ["train", *args])


def _raised(result, kind):
    """The CLI either raises the expected error (in-process runner) or maps it to exit 2 with the message."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert isinstance(result.exception, kind), repr(result.exception)
        return str(result.exception)
    assert result.exit_code == 2, result.output
    return result.output


def test_good_and_bad_records_are_counted_and_quarantined(tmp_path, recipe):
    from studyabroadgpt.data.io import write_conversations

    good = tmp_path / "good.jsonl"
    write_conversations(make_convs(4), good)
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(good.read_text() + "\n".join(BAD_LINES) + "\n")
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({**recipe, "dataset": str(mixed), "max_steps": 1}))
    result = invoke("--config", str(cfg))
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "16 records, 4 kept, 12 quarantined" in out
    qfile = Path(recipe["output_dir"]) / "t" / "quarantine" / "main.jsonl"
    rows = [json.loads(x) for x in qfile.read_text().splitlines()]
    assert len(rows) == 12 and all(r["reasons"] for r in rows)
    assert sorted(r["line"] for r in rows) == list(range(5, 17))
    info = json.loads((Path(recipe["output_dir"]) / "t" / "run_info.json").read_text())
    assert info["data"]["records"] == 16 and info["data"]["quarantined_rows"] == 12


def test_dataset_problems_are_reported_before_the_model_loads(tmp_path, recipe, monkeypatch):
    from studyabroadgpt.train import trainer

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the dataset was checked")

    monkeypatch.setattr(trainer, "load_for_training", no_model)
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({**recipe, "dataset": str(tmp_path / "missing.jsonl")}))
    msg = _raised(invoke("--config", str(cfg)), DataError)
    assert "missing.jsonl" in msg
    allbad = tmp_path / "bad.jsonl"
    allbad.write_text("\n".join(BAD_LINES[:3]) + "\n")
    cfg.write_text(yaml.safe_dump({**recipe, "dataset": str(allbad)}))
    msg = " ".join(_raised(invoke("--config", str(cfg)), DataError).split())
    assert "no valid conversation to train on" in msg and "all 3 quarantined" in msg and "bad.jsonl:1" in msg
    # the second phase's dataset is checked too, before anything runs
    phases = [{"name": "a", "dataset": recipe["dataset"]}, {"name": "b", "dataset": str(tmp_path / "nope.jsonl")}]
    cfg.write_text(yaml.safe_dump({**recipe, "phases": phases}))
    assert "nope.jsonl" in _raised(invoke("--config", str(cfg)), DataError)


@pytest.mark.parametrize("budget", ["soon", "-5m", "0s", "5 parsecs"])
def test_bad_time_budget_is_a_config_error(tmp_path, recipe, budget):
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    msg = _raised(invoke("--config", str(cfg), "--time-budget", budget), ConfigError)
    assert "time budget" in msg and budget.split()[0] in msg


def test_config_that_is_a_directory_or_holds_markup(tmp_path, recipe):
    msg = _raised(invoke("--config", str(tmp_path)), ConfigError)
    assert "is a directory" in msg
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    msg = _raised(invoke("--config", str(cfg), "lora.r=[/x]"), ConfigError)
    assert "lora.r" in msg and "/x" in msg
    msg = _raised(invoke("--config", str(cfg), "dataset=d[/x].jsonl"), DataError)
    assert "d[/x].jsonl" in msg, "the path is shown as given, never read as rich markup"
