"""Bad inputs to a *training run* (beyond broken recipe files, which tests/hardening's "config" family covers with
`--plan`): time budgets, resume targets, datasets. Through the shared corpus harness: every case must exit 2 with
a message naming the input, without a traceback — and without loading a model (the checks come first)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import yaml

from tests.hardening.corpus import Case, build_cases, family, make_runner, run_case, summarise

from .conftest import make_convs

BASE = {"name": "t", "model": "tiny-random", "seq_len": 64, "batch_size": 1, "grad_accum": 1, "max_steps": 1,
        "threads": 1}


@family("train-run")
def broken_train_runs(root: Path) -> Iterator[Case]:
    from studyabroadgpt.data.io import write_conversations

    root.mkdir(parents=True, exist_ok=True)
    good = root / "good.jsonl"
    write_conversations(make_convs(2), good)
    ok = root / "ok.yaml"
    ok.write_text(yaml.safe_dump({**BASE, "output_dir": str(root / "runs"), "dataset": str(good)}))
    for i, budget in enumerate(["soon", "-5m", "0s", "5 parsecs", "", "1h-5m", "m", "10x"]):
        yield Case(f"train-run/budget{i}", ["train", "--config", str(ok), "--time-budget", budget], expect="usage",
                   mentions=["time budget"])
    # datasets: missing, empty, garbage, all records bad, a directory without data, a missing 2nd phase, eval set
    (root / "empty.jsonl").write_text("")
    (root / "garbage.jsonl").write_bytes(bytes(range(256)) * 4)
    (root / "allbad.jsonl").write_text('{"x": 1}\n[1, 2]\n{"conversations": []}\n')
    (root / "nodata").mkdir(exist_ok=True)
    (root / "nodata" / "readme.md").write_text("no conversations here\n")
    for name in ["missing.jsonl", "empty.jsonl", "garbage.jsonl", "allbad.jsonl", "nodata"]:
        yield Case(f"train-run/dataset-{name}", ["train", "--config", str(ok), f"dataset={root / name}"],
                   expect="usage", mentions=[name])
    phases = json.dumps([{"name": "a"}, {"name": "b", "dataset": str(root / "phase2-missing.jsonl")}])
    yield Case("train-run/phase2-dataset", ["train", "--config", str(ok), f"phases={phases}"], expect="usage",
               mentions=["phase2-missing.jsonl"])
    yield Case("train-run/eval-dataset", ["train", "--config", str(ok), "eval_steps=1",
                                          f"eval_dataset={root / 'eval-missing.jsonl'}"], expect="usage",
               mentions=["eval-missing.jsonl"])
    # resume targets: nothing there, a file, an empty dir, broken state.json, a damaged only checkpoint
    (root / "afile").write_text("x")
    (root / "emptyrun").mkdir(exist_ok=True)
    broken = root / "brokenrun" / "checkpoints" / "step-000001"
    (broken / "adapter").mkdir(parents=True, exist_ok=True)
    (broken / "state.json").write_text('{"format": 1, "global_st')
    wrong = root / "wrongformat"
    wrong.mkdir(exist_ok=True)
    (wrong / "state.json").write_text('{"format": 99, "global_step": 3}')
    listy = root / "listy"
    listy.mkdir(exist_ok=True)
    (listy / "state.json").write_text("[1, 2, 3]")
    for name in ["nothing-here", "afile", "emptyrun", "brokenrun", "wrongformat", "listy"]:
        yield Case(f"train-run/resume-{name}", ["train", "--resume", str(root / name)], expect="usage",
                   mentions=[name])


def _damaged_checkpoint(root: Path) -> Path:
    """A run dir whose only checkpoint has an intact state.json but an empty optimizer.pt."""
    src = root / "ckpt-src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "checkpoints" / "step-000002" / "adapter").mkdir(parents=True)
    step = src / "checkpoints" / "step-000002"
    (step / "adapter" / "adapter_config.json").write_text("{}")
    (step / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    (step / "optimizer.pt").write_bytes(b"")
    (step / "state.json").write_text(json.dumps({"format": 1, "global_step": 2, "phase_index": 0}))
    return src


def test_training_run_inputs_give_one_clear_line(tmp_path, monkeypatch):
    from studyabroadgpt.train import trainer

    def no_model(*a, **k):
        raise AssertionError("a model was loaded for an input that should have been refused first")

    monkeypatch.setattr(trainer, "load_for_training", no_model)
    monkeypatch.setenv("STUDYABROADGPT_LOG_DIR", str(tmp_path / "logs"))
    cases = build_cases(tmp_path, ["train-run"])
    damaged = _damaged_checkpoint(tmp_path)
    cases.append(Case("train-run/resume-damaged", ["train", "--resume", str(damaged)], expect="usage",
                      mentions=["step-000002", "unreadable"]))
    runner = make_runner()
    outcomes = [run_case(c, runner, limit_s=600) for c in cases]
    bad = [o for o in outcomes if o.kind != "ok"]
    assert not bad, "\n".join(f"{o.kind} {o.case.name}: {o.detail}" for o in bad)
    figures = summarise(outcomes)
    assert figures["cases"] == 22 and figures["traceback"] == 0 and figures["hang"] == 0
