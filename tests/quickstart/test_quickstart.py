"""The real `sagpt quickstart` entry point end to end on the tiny model: every stage, skipping, --fresh."""
import json

from typer.testing import CliRunner

from studyabroadgpt.cli import app

runner = CliRunner()

ARGS = ["quickstart", "--model", "tiny-random", "--n-synth", "40", "--time-budget", "25s", "--eval-prompts", "3",
        "--max-new-tokens", "8", "--set", "seq_len=256", "--set", "save_steps=5"]


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
    ev = json.loads((out / "eval" / "summary.json").read_text())
    assert ev["systems"] == ["base", "tuned", "tuned+rag"] and ev["n_items"] == 3
    rows = [json.loads(line) for line in (out / "eval" / "outputs.jsonl").read_text().splitlines()]
    grounded = [r for r in rows if r["system"] == "tuned+rag"]
    assert grounded and all("Sources" in r["response"] for r in grounded)  # grounded answers cite the KB
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
