"""The real `sagpt quickstart` entry point end to end on the tiny model: every stage, skipping, --fresh."""
import json

from typer.testing import CliRunner

from studyabroadgpt.cli import app

runner = CliRunner()

ARGS = ["quickstart", "--model", "tiny-random", "--n-synth", "40", "--time-budget", "25s", "--eval-prompts", "3",
        "--max-new-tokens", "8", "--set", "seq_len=768", "--set", "save_steps=5",
        "--set", "grad_accum=1", "--set", "max_steps=3", "--set", "warmup_ratio=0"]


def test_quickstart_runs_every_stage_then_skips_them(tmp_path):
    out = tmp_path / "qs"
    r = runner.invoke(app, [*ARGS, "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for stage in ("synth", "data", "train", "eval", "publish"):
        assert (out / stage / "stage.json").exists(), stage
    summary = json.loads((out / "quickstart_summary.json").read_text())
    assert summary["synth"]["n"] == 40
    assert summary["data"]["n_train"] + summary["data"]["n_test"] + summary["data"]["dedup_removed"] == 40
    assert (out / "train" / "adapter" / "adapter_model.safetensors").exists()
    assert summary["synth"]["grounded"] and summary["synth"]["quarantined"] == 0
    first = json.loads((out / "synth" / "conversations.jsonl").read_text().splitlines()[0])
    assert first["conversations"][0]["from"] == "system"  # trained on the served numbered-facts prompt
    assert summary["data"]["seq_len"] == 768  # the recipe's seq_len reaches the data statistics
    ev = json.loads((out / "eval" / "summary.json").read_text())
    assert ev["systems"] == ["base", "tuned", "base+rag", "tuned+rag"] and ev["n_items"] == 3
    assert "looping_rate" in ev["metrics"] and "expect_pass_rate" in ev["metrics"]
    assert any(c["a"] == "base+rag" and c["b"] == "tuned+rag" for c in ev["comparisons"])
    rows = [json.loads(line) for line in (out / "eval" / "outputs.jsonl").read_text().splitlines()]
    from studyabroadgpt.eval.items import REAL_STYLE, load_items

    real_style = {it.id for it in load_items(REAL_STYLE)}
    assert {r["id"] for r in rows} <= real_style and all("category" in r for r in rows)
    grounded = [r for r in rows if r["system"].endswith("+rag")]
    assert len(grounded) == 6 and all("sources" in r for r in grounded)  # grounded answers record citations
    assert "Evaluation on 3 prompts" in r.output and "tuned+rag − base+rag" in r.output
    assert (out / "eval" / "report.html").exists()
    assert (out / "publish" / "model" / "README.md").exists()
    assert "Chat with it" in r.output and "sagpt serve" in r.output

    # a second run finds every stage up to date and does no work
    before = {s: (out / s / "stage.json").stat().st_mtime for s in ("synth", "data", "train", "eval", "publish")}
    r2 = runner.invoke(app, [*ARGS, "--out", str(out)], catch_exceptions=False)
    assert r2.exit_code == 0 and r2.output.count("up to date") == 5
    assert before == {s: (out / s / "stage.json").stat().st_mtime for s in before}

    # an interrupted stage (no stage.json) is redone; finished stages around it are not
    (out / "eval" / "stage.json").unlink()
    (out / "eval" / "report.html").unlink()
    r3 = runner.invoke(app, [*ARGS, "--out", str(out)], catch_exceptions=False)
    assert r3.exit_code == 0 and r3.output.count("up to date") == 4
    assert (out / "eval" / "report.html").exists()

    # a changed training input re-trains from scratch and re-runs everything downstream of it
    r4 = runner.invoke(app, [*ARGS, "--set", "lr=1e-3", "--out", str(out)], catch_exceptions=False)
    assert r4.exit_code == 0 and r4.output.count("up to date") == 2  # synth and data only
    assert "resuming" not in r4.output
    assert json.loads((out / "train" / "stage.json").read_text())["inputs"]["overrides"][-1] == "lr=1e-3"


def test_quickstart_trains_a_short_complete_schedule_unless_told_otherwise():
    from studyabroadgpt.quickstart import QuickstartConfig, recipe

    default = recipe(QuickstartConfig())
    assert (default.max_steps, default.grad_accum, default.lr) == (12, 2, 4e-4)
    mine = recipe(QuickstartConfig(train_overrides=["max_steps=3", "lr=1e-3"]))  # --set wins
    assert (mine.max_steps, mine.grad_accum, mine.lr) == (3, 2, 1e-3)
    file_recipe = recipe(QuickstartConfig(train_config="configs/smollm2-135m-cpu.yaml"))  # a recipe file's own
    assert (file_recipe.max_steps, file_recipe.grad_accum, file_recipe.epochs) == (None, 4, 3)


def test_training_line_reads_the_loss_trend_not_two_single_steps(tmp_path):
    from studyabroadgpt.quickstart import _loss_trend

    losses = [2.0, 1.5, 2.5, 1.0, 1.2, 1.1, 1.3, 1.9]  # last single step above the first: a noisy "rise"
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "loss": x}) + "\n"
                                                    for i, x in enumerate(losses, 1)))
    line = _loss_trend(str(tmp_path), {"first_loss": 2.0, "last_loss": 1.9})
    assert line == "loss 1.750 → 1.600 (mean of the first / last 2 steps, 8.6% lower)"
