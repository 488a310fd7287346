"""A run killed with SIGKILL mid-training resumes from its last atomic checkpoint and ends where an
uninterrupted run ends."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from studyabroadgpt.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, recipe, conv_factory):
    from studyabroadgpt.data.io import write_conversations

    data = tmp_path / "many.jsonl"
    write_conversations(conv_factory(16), data)
    base = {**recipe, "dataset": str(data), "epochs": 2, "save_steps": 2, "keep_checkpoints": 3, "lr": 1e-2}

    ref_cfg = tmp_path / "ref.yaml"
    ref_cfg.write_text(yaml.safe_dump({**base, "name": "ref"}))
    result = CliRunner().invoke(app, ["train", "--config", str(ref_cfg)])
    assert result.exit_code == 0, result.output

    cfg = tmp_path / "crash.yaml"
    cfg.write_text(yaml.safe_dump({**base, "name": "crash"}))
    run = Path(base["output_dir"]) / "crash"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "studyabroadgpt.cli", "train", "--config", str(cfg)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 1200  # generous: on a shared, loaded 2-core machine start-up alone can take minutes
    while not (run / "checkpoints" / "step-000004" / "state.json").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (run / "train_summary.json").exists()

    result = CliRunner().invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    ref_summary = json.loads((Path(base["output_dir"]) / "ref" / "train_summary.json").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == ref_summary["steps"] and summary["tokens_seen"] == ref_summary["tokens_seen"]
    assert abs(summary["last_loss"] - ref_summary["last_loss"]) < 1e-4
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, summary["steps"] + 1)), "no duplicated or missing metric rows"

    ref = load_file(str(Path(base["output_dir"]) / "ref" / "adapter" / "adapter_model.safetensors"))
    got = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert ref.keys() == got.keys()
    earlier = load_file(str(run / "checkpoints" / sorted(os.listdir(run / "checkpoints"))[0] /
                         "adapter" / "adapter_model.safetensors"))
    for k in ref:
        assert (ref[k] - got[k]).abs().max() < 1e-5, k
    assert any((ref[k] - earlier[k]).abs().max() > 1e-3 for k in ref), "training moved the adapter"
