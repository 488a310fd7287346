"""The same command under a 2-process launcher (gloo on CPU) trains with world size 2 and the ranks stay in sync."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_ddp_on_cpu_resuming_a_single_process_bundle(tmp_path, recipe):
    from typer.testing import CliRunner

    from studyabroadgpt.cli import app

    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump({**recipe, "name": "ddp", "threads": 1, "batch_size": 1, "epochs": 2}))
    first = CliRunner().invoke(app, ["train", "--config", str(cfg), "--time-budget", "1s"])
    assert first.exit_code == 0 and "time budget reached" in first.output, first.output
    run = Path(recipe["output_dir"]) / "ddp"
    # Environment notes: plain `accelerate launch --cpu` runs ONE process, plain torchrun two unconnected
    # copies; torchrun with ACCELERATE_USE_CPU=1 gives a real gloo process group.
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "studyabroadgpt.cli",
                           "train", "--resume", str(run)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = " ".join(proc.stderr.split())
    assert "re-planned the remaining schedule" in said and "2 processes" in said
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and len(summary["rank_lora_checksums"]) == 2
    assert summary["ranks_in_sync"], summary["rank_lora_checksums"]
    assert summary["sessions"] == 2 and summary["stopped_by"] == "completed"
    assert summary["last_loss"] < summary["first_loss"]
    assert json.loads((run / "run_info.json").read_text())["world_size"] == 2
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, summary["steps"] + 1))
    # both ranks' RNG states go into every checkpoint written by the 2-process session
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    assert (ckpt / "rng_rank0.pt").exists() and (ckpt / "rng_rank1.pt").exists()
