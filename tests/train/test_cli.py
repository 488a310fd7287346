"""`sagpt train` end to end on the tiny model: outputs, time-budget handoff, resume, refusal of changed data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from studyabroadgpt.cli import app
from studyabroadgpt.config import ConfigError

runner = CliRunner()
SUMMARY_KEYS = {"base_model", "first_loss", "last_loss", "min_loss", "loss_reduction_pct", "tokens_seen",
                "trained_tokens", "tokens_per_s", "peak_memory_mb", "wall_time_s", "steps", "epochs", "stopped_by",
                "dataset_fingerprint", "seed"}
METRIC_KEYS = {"step", "epoch", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed_s"}


def write_recipe(tmp_path: Path, recipe: dict, **changes) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**recipe, **changes}))
    return path


class UsageExit(Exception):
    """`sagpt` exited 2 (usage / config / data error); the message is the one line it printed."""


def invoke(*args: str):
    result = runner.invoke(app, ["train", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    out = " ".join(result.output.split())  # rich wraps at 80 columns under CliRunner
    if result.exit_code == 2:
        assert "Traceback" not in result.output
        raise UsageExit(out)
    assert result.exit_code == 0, result.output
    return out


def rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_the_run_contract_and_loss_falls(tmp_path, recipe):
    from peft import PeftModel

    from studyabroadgpt import models

    cfg = write_recipe(tmp_path, recipe, epochs=4)
    out = invoke("--config", str(cfg), "lr=3e-2")
    run = Path(recipe["output_dir"]) / "t"
    assert "completed" in out
    summary = json.loads((run / "train_summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary) and summary["stopped_by"] == "completed"
    assert summary["last_loss"] < summary["first_loss"] and summary["loss_reduction_pct"] > 0
    assert summary["trained_tokens"] < summary["tokens_seen"]
    metric_rows = rows(run)
    assert [r["step"] for r in metric_rows] == list(range(1, summary["steps"] + 1))
    assert all(METRIC_KEYS <= set(r) for r in metric_rows)
    info = json.loads((run / "run_info.json").read_text())
    assert info["dataset_fingerprint"] == summary["dataset_fingerprint"] and "torch" in info["library_versions"]
    assert yaml.safe_load((run / "config.yaml").read_text())["lr"] == 3e-2
    assert (run / "loss.png").stat().st_size > 1000
    adapter = run / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny-random"
    base, _ = models.load("tiny-random")
    tuned = PeftModel.from_pretrained(base, str(adapter))
    assert any("lora_A" in n for n, _ in tuned.named_parameters())
    assert (adapter / "tokenizer_config.json").exists()
    # periodic checkpoints: atomic step dirs, only the last `keep_checkpoints` kept
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(ckpts) <= 2 and all(p.startswith("step-") for p in ckpts)
    assert not list((run / "checkpoints").glob(".*tmp"))


def test_time_budget_handoff_then_resume_with_a_new_batch_size(tmp_path, recipe):
    cfg = write_recipe(tmp_path, recipe)
    run = Path(recipe["output_dir"]) / "t"
    out = invoke("--config", str(cfg), "--time-budget", "1s")
    assert "time budget reached" in out and "sagpt train --resume" in out
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["stopped_by"] == "time_budget" and summary["steps"] == 1
    bundle = run / "handoff"
    for name in ("adapter/adapter_model.safetensors", "optimizer.pt", "rng_rank0.pt", "state.json", "config.yaml"):
        assert (bundle / name).exists(), name
    assert (run / "RESUME.txt").read_text().startswith("sagpt train --resume")
    state = json.loads((bundle / "state.json").read_text())
    assert state["global_step"] == 1 and state["offset"] > 0

    out = invoke("--resume", str(bundle), "batch_size=1")
    assert "re-planned the remaining schedule" in out
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["stopped_by"] == "completed" and summary["sessions"] == 2
    steps = [r["step"] for r in rows(run)]
    assert steps == list(range(1, summary["steps"] + 1))
    lrs = [r["lr"] for r in rows(run)]
    assert all(b <= a + 1e-12 for a, b in zip(lrs, lrs[1:])), "linear decay stays monotone across the re-plan"
    assert not (run / "RESUME.txt").exists()


def test_resume_refuses_a_changed_dataset(tmp_path, recipe, small_data, conv_factory):
    from studyabroadgpt.data.io import write_conversations

    cfg = write_recipe(tmp_path, recipe)
    run = Path(recipe["output_dir"]) / "t"
    invoke("--config", str(cfg), "--time-budget", "1s")
    write_conversations(conv_factory(8, tag="-edited"), small_data)
    with pytest.raises(UsageExit, match="dataset changed since the bundle"):
        invoke("--resume", str(run))
    out = invoke("--resume", str(run), "--allow-data-change", "--adapter-only")
    assert "continuing from the same cursor" in out and "optimizer moments start fresh" in out
    assert json.loads((run / "train_summary.json").read_text())["stopped_by"] == "completed"


def test_fresh_run_refuses_to_clobber_checkpoints(tmp_path, recipe):
    cfg = write_recipe(tmp_path, recipe, epochs=1)
    invoke("--config", str(cfg), "--time-budget", "1s")
    with pytest.raises(UsageExit, match="already holds checkpoints"):
        invoke("--config", str(cfg))
    invoke("--config", str(cfg), "--overwrite")


def test_bad_recipe_is_a_clean_config_error(tmp_path, recipe):
    cfg = write_recipe(tmp_path, recipe)
    with pytest.raises(UsageExit, match="lora.r"):
        invoke("--config", str(cfg), "lora.r=0")
    with pytest.raises(UsageExit, match="time budget"):
        invoke("--config", str(cfg), "time_budget=soon")
    with pytest.raises(UsageExit, match="eval_dataset is not"):
        invoke("--config", str(cfg), "eval_steps=5")
    with pytest.raises(UsageExit, match="learning_rate"):
        invoke("--config", str(cfg), "learning_rate=1e-4")  # unknown keys are refused, not ignored


def test_nf4_path_trains_on_cpu(tmp_path, recipe):
    cfg = write_recipe(tmp_path, recipe, quantization="nf4", max_steps=2, gradient_checkpointing=True)
    invoke("--config", str(cfg))
    run = Path(recipe["output_dir"]) / "t"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["first_loss"] > 0
    assert (run / "adapter" / "adapter_model.safetensors").exists()


def test_show_labels_and_plan(tmp_path, recipe):
    cfg = write_recipe(tmp_path, recipe)
    out = invoke("--config", str(cfg), "--show-labels", "2")
    assert "trained" in out and "c0" in out and "c1" in out
    assert not (Path(recipe["output_dir"]) / "t").exists()


def test_plan_reports_memory_time_and_largest_batch(tmp_path, recipe):
    from studyabroadgpt.train.config import load_train_config
    from studyabroadgpt.train.plan import estimate_memory, plan_report

    root = Path(__file__).resolve().parents[2]
    out = invoke("--config", str(root / "configs" / "mistral-7b-qlora-t4.yaml"), "--plan", "--gpu", "t4")
    assert "NVIDIA T4" in out and "41.9M trainable" in out and "fits" in out
    assert "largest batch that fits" in out and "tokens/s" in out
    cfg = load_train_config(root / "configs" / "mistral-7b-qlora-t4.yaml")
    from studyabroadgpt.train.plan import MISTRAL_7B_V03

    with_ckpt = estimate_memory(cfg, MISTRAL_7B_V03, 4)
    without = estimate_memory(cfg.model_copy(update={"gradient_checkpointing": False}), MISTRAL_7B_V03, 4)
    assert 8 < with_ckpt.total_gb < 15.0 < without.total_gb  # the paper fit batch 4 x 2048 on a T4 only with ckpt
    assert estimate_memory(cfg, MISTRAL_7B_V03, 8).total_gb > with_ckpt.total_gb
    with pytest.raises(ConfigError, match="choose one of"):
        plan_report(cfg, "v100")
    tiny = write_recipe(tmp_path, recipe)
    out = invoke("--config", str(tiny), "--plan", "--gpu", "a10g")
    assert "time per epoch" in out and "8 conversations" in out


def test_missing_tracker_is_a_clean_error(tmp_path, recipe):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    cfg = write_recipe(tmp_path, recipe, report_to=["wandb"])
    with pytest.raises(UsageExit, match="pip install wandb"):
        invoke("--config", str(cfg))


def test_resuming_a_finished_run_changes_nothing(tmp_path, recipe):
    from safetensors.torch import load_file

    cfg = write_recipe(tmp_path, recipe)
    invoke("--config", str(cfg))
    run = Path(recipe["output_dir"]) / "t"
    before = json.loads((run / "train_summary.json").read_text())
    weights = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    invoke("--resume", str(run))
    after = json.loads((run / "train_summary.json").read_text())
    assert after["steps"] == before["steps"] and after["last_loss"] == before["last_loss"]
    assert after["sessions"] == 2 and after["stopped_by"] == "completed"
    again = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert all((weights[k] == again[k]).all() for k in weights)
