"""One short run of the real SmolLM2-135M through the CLI: the assistant-token loss falls."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from studyabroadgpt.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_default_recipe_on_real_smollm2_loss_falls(tmp_path, sample_path):
    from studyabroadgpt.data.io import write_conversations
    from studyabroadgpt.data.load import load_valid

    convs = load_valid(sample_path).conversations
    data = tmp_path / "two.jsonl"
    write_conversations(convs[:2], data)  # a tiny overfit set: every step sees the same two conversations
    result = CliRunner().invoke(app, [
        "train", "--config", str(ROOT / "configs" / "smollm2-135m-cpu.yaml"), f"output_dir={tmp_path}",
        "name=real", f"dataset={data}", "seq_len=256", "batch_size=2", "grad_accum=1", "max_steps=5",
        "epochs=10", "lr=1e-3", "warmup_ratio=0", "threads=1"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "real"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 5 and summary["base_model"] == "default"
    assert summary["last_loss"] < summary["first_loss"] * 0.9, summary
    cfg = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "default" and cfg["r"] == 16
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == "default"
