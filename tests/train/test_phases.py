"""Phases run in order with the adapter carried over; eval rows land in metrics.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from studyabroadgpt.cli import app


def test_two_phase_curriculum_carries_the_adapter(tmp_path, recipe, conv_factory):
    from studyabroadgpt.data.io import write_conversations

    synthetic, curated = tmp_path / "synthetic.jsonl", tmp_path / "curated.jsonl"
    write_conversations(conv_factory(8, tag="-syn"), synthetic)
    write_conversations(conv_factory(4, tag="-cur"), curated)
    cfg = tmp_path / "phases.yaml"
    cfg.write_text(yaml.safe_dump({
        **recipe, "eval_dataset": str(curated), "eval_steps": 1,
        "phases": [{"name": "synthetic", "dataset": str(synthetic), "epochs": 1},
                   {"name": "curated", "dataset": str(curated), "epochs": 2, "lr": 1e-2, "batch_size": 1}]}))
    result = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    run = Path(recipe["output_dir"]) / "t"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    phases = [r["phase"] for r in train]
    assert phases == sorted(phases, key=["synthetic", "curated"].index) and set(phases) == {"synthetic", "curated"}
    assert [r["step"] for r in train] == list(range(1, len(train) + 1)), "global steps continue across phases"
    assert max(r["lr"] for r in train if r["phase"] == "curated") <= 1e-2
    evals = [r for r in rows if "eval_loss" in r]
    assert len(evals) == len(train) and all(r["eval_loss"] > 0 for r in evals)
    phase1 = load_file(str(run / "phases" / "synthetic" / "adapter" / "adapter_model.safetensors"))
    final = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert phase1.keys() == final.keys()
    assert any((phase1[k] - final[k]).abs().max() > 0 for k in final), "phase 2 kept training the adapter"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["phase"] == "curated" and summary["steps"] == len(train)


def test_phases_survive_one_step_sessions(tmp_path, recipe, conv_factory):
    """A 1-second budget per session: every session does one step, hands off, and the next one (re-launched
    from the run dir) crosses the phase boundary on its own; the result matches one uninterrupted run."""
    from studyabroadgpt.data.io import write_conversations

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_conversations(conv_factory(4, tag="-a"), a)
    write_conversations(conv_factory(4, tag="-b"), b)
    phases = [{"name": "one", "dataset": str(a), "epochs": 1}, {"name": "two", "dataset": str(b), "epochs": 1}]
    for name in ("whole", "sliced"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**recipe, "name": name, "phases": phases}))
    runner = CliRunner()
    assert runner.invoke(app, ["train", "--config", str(tmp_path / "whole.yaml")]).exit_code == 0
    sliced = Path(recipe["output_dir"]) / "sliced"
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "sliced.yaml"), "--time-budget", "1s"])
    for _ in range(10):
        assert result.exit_code == 0, result.output
        if json.loads((sliced / "train_summary.json").read_text())["stopped_by"] == "completed":
            break
        result = runner.invoke(app, ["train", "--resume", str(sliced), "--time-budget", "1s"])
    whole = json.loads((Path(recipe["output_dir"]) / "whole" / "train_summary.json").read_text())
    done = json.loads((sliced / "train_summary.json").read_text())
    assert done["stopped_by"] == "completed" and done["sessions"] >= 3
    assert done["steps"] == whole["steps"] and abs(done["last_loss"] - whole["last_loss"]) < 1e-4
    ref = load_file(str(Path(recipe["output_dir"]) / "whole" / "adapter" / "adapter_model.safetensors"))
    got = load_file(str(sliced / "adapter" / "adapter_model.safetensors"))
    assert all((ref[k] - got[k]).abs().max() < 1e-5 for k in ref)
