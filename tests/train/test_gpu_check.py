"""benchmarks/gpu_check.py runs end to end on CPU with a tiny Mistral-shaped config: both trainers train on the
4-bit model, and the JSON carries speed, peak memory and the planner's estimate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_script_on_cpu_with_a_tiny_config(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--arch", "tiny",
                           "--seq-len", "64", "--batch", "2", "--steps", "2", "--workdir", str(tmp_path / "w"),
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["device"]["device"] == "cpu" and res["seq_len"] == 64 and res["batch"] == 2
    config = json.loads((tmp_path / "w" / "model-tiny" / "config.json").read_text())
    assert config["model_type"] == "mistral" and config["num_key_value_heads"] == 2
    assert config.get("rope_theta") == 1e6 or (config.get("rope_parameters") or {}).get("rope_theta") == 1e6
    runs = {r["trainer"]: r for r in res["runs"]}
    assert set(runs) == {"ours", "trl"}
    for r in runs.values():
        assert r["tokens_per_s"] > 0 and r["peak_rss_gb"] > 0 and r["first_loss"] > 0, r
    # rows are truncated to seq_len: each timed step of ours holds exactly batch x seq_len tokens
    assert runs["ours"]["tokens"] == runs["ours"]["steps"] * 2 * 64
    assert res["plan_estimate"]["total_gb"] > 0
    assert "plan estimate" in proc.stdout and "ours" in proc.stdout and "trl" in proc.stdout
