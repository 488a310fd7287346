"""Kill-at-every-phase test of checkpoint writing: whatever point of a save a run dies at, the next run resumes
from the newest intact bundle (or starts clean when there is none) and ends exactly where an uninterrupted run ends.

The kill is simulated in-process (fast: no interpreter start per case): a hook raises at the chosen phase of the
chosen save, and the clean-up a normal exception would run is disabled, so the run directory is left exactly as
SIGKILL would leave it (tests/train/test_crash_resume.py does one real SIGKILL). Torn files — what a power loss
leaves when data was not fsynced before the rename — are produced by truncating files of the newest checkpoint.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from studyabroadgpt.train import checkpoint as ckpt
from studyabroadgpt.train import run

from .conftest import make_convs

STEPS = 4


class Killed(BaseException):
    """Stands for SIGKILL: BaseException, so no `except Exception` in the code under test swallows it."""


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A recipe saving after every step, and the outcome of one uninterrupted run of it."""
    from studyabroadgpt.data.io import write_conversations

    root = tmp_path_factory.mktemp("kill")
    data = root / "train.jsonl"
    write_conversations(make_convs(12), data)
    cfg = {"name": "ref", "output_dir": str(root / "runs"), "model": "tiny-random", "dataset": str(data),
           "seq_len": 128, "batch_size": 2, "grad_accum": 1, "epochs": 3, "max_steps": STEPS, "lr": 2e-2,
           "warmup_ratio": 0.0, "save_steps": 1, "keep_checkpoints": 3, "threads": 1}
    ref = run(cfg)
    return {"cfg": cfg, "root": root, "summary": json.loads((ref / "train_summary.json").read_text()),
            "adapter": load_file(str(ref / "adapter" / "adapter_model.safetensors"))}


def killed_run(monkeypatch, cfg: dict, name: str, phase: str, nth_save: int, **kw) -> Path:
    calls = {"n": 0}

    def hook(at: str) -> None:
        if at == SAVE_ORDER[0]:
            calls["n"] += 1
        if at == phase and calls["n"] == nth_save:
            raise Killed(f"killed at {phase} of save {nth_save}")

    monkeypatch.setattr(ckpt, "_hook", hook)
    monkeypatch.setattr(ckpt, "_discard", lambda p: None)  # a killed process cleans nothing up
    with pytest.raises(Killed):
        run({**cfg, "name": name}, **kw)
    monkeypatch.setattr(ckpt, "_hook", None)
    monkeypatch.setattr(ckpt, "_discard", lambda p: shutil.rmtree(p, ignore_errors=True))
    return Path(cfg["output_dir"]) / name


SAVE_ORDER = ckpt.SAVE_PHASES


def finish(cfg: dict, run_dir: Path) -> dict:
    """What a user (or the quickstart) does next: resume if there is anything to resume, else start again."""
    resume = ckpt.resumable(run_dir)
    run({**cfg, "name": run_dir.name}, resume=run_dir if resume else None)
    return json.loads((run_dir / "run_info.json").read_text())


def assert_matches_reference(base: dict, run_dir: Path) -> None:
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["stopped_by"] == "completed" and summary["steps"] == base["summary"]["steps"]
    assert abs(summary["last_loss"] - base["summary"]["last_loss"]) < 1e-4
    got = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    assert got.keys() == base["adapter"].keys()
    assert all((got[k] - base["adapter"][k]).abs().max() < 1e-5 for k in got)
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1)), "no duplicated or missing metric rows"
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temp dirs left behind: {leftovers}"
    assert all(ckpt.validate_bundle(p) is None for p in ckpt.list_checkpoints(run_dir / "checkpoints"))


# Every phase of the 3rd save (two intact checkpoints exist), and the first save just after its rename (before
# it, nothing exists yet: test_fresh_run_over_a_killed_first_save_starts_clean).
CASES = [(p, 3) for p in SAVE_ORDER if p != "old_moved_aside"] + [("renamed", 1)]


@pytest.mark.parametrize("phase,nth", CASES, ids=[f"{p}-save{n}" for p, n in CASES])
def test_kill_during_a_checkpoint_save(base, monkeypatch, phase, nth):
    run_dir = killed_run(monkeypatch, base["cfg"], f"k-{phase}-{nth}", phase, nth)
    # after the rename the new checkpoint is complete; before it, the previous one is the newest intact bundle
    expected = nth if phase == "renamed" else nth - 1
    found = ckpt.resumable(run_dir)
    assert (found and ckpt._step_of(found)) == (expected or None)
    info = finish(base["cfg"], run_dir)
    resumed_from = info["sessions"][-1]["resumed_from"]
    if expected:
        assert resumed_from.endswith(f"step-{expected:06d}") and len(info["sessions"]) == 2
    else:
        assert resumed_from is None and len(info["sessions"]) == 1, "nothing to resume: a clean start"
    assert_matches_reference(base, run_dir)


def test_kill_while_a_handoff_replaces_the_previous_one(base, monkeypatch):
    """The second handoff of a run moves the first aside before renaming itself in: killed in between, the run
    directory has no `handoff/` at all, and resume still finds the newest intact bundle."""
    cfg = {**base["cfg"], "save_steps": 100}
    name = "k-handoff"
    run({**cfg, "name": name}, time_budget="1s")  # one step, then a handoff
    run_dir = Path(cfg["output_dir"]) / name
    assert ckpt._step_of(run_dir / "handoff") == 1
    killed_run(monkeypatch, cfg, name, "old_moved_aside", 1, resume=run_dir, time_budget="1s")
    assert not (run_dir / "handoff").exists() and (run_dir / ".handoff.old").exists()
    assert ckpt.resumable(run_dir) == run_dir / ".handoff.old"
    finish(cfg, run_dir)
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["steps"] == STEPS and summary["stopped_by"] == "completed"
    assert not (run_dir / ".handoff.old").exists()
    got = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    assert all((got[k] - base["adapter"][k]).abs().max() < 1e-5 for k in got)


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _torn_json(p: Path) -> None:
    p.write_text(p.read_text()[: len(p.read_text()) // 2])


TORN = {"optimizer.pt": _empty, "adapter/adapter_model.safetensors": _empty, "state.json": _torn_json,
        "rng_rank0.pt": lambda p: p.write_bytes(p.read_bytes()[:100])}


@pytest.fixture(scope="module")
def killed_after_save3(base):
    """One run killed right after its 3rd checkpoint landed; each torn-file case works on a copy of it."""
    mp = pytest.MonkeyPatch()
    try:
        return killed_run(mp, base["cfg"], "torn-base", "renamed", 3)
    finally:
        mp.undo()


@pytest.mark.parametrize("victim", sorted(TORN))
def test_torn_newest_checkpoint_falls_back_to_the_previous_one(base, killed_after_save3, victim):
    run_dir = killed_after_save3.with_name(f"torn-{victim.replace('/', '_')}")
    shutil.copytree(killed_after_save3, run_dir)
    newest = run_dir / "checkpoints" / "step-000003"
    TORN[victim](newest / victim)
    # and the metrics row being appended when the process died is half a line
    with open(run_dir / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 4, "loss": 1.2')
    assert ckpt.validate_bundle(newest) is not None
    with pytest.raises(Exception, match="cannot resume from this bundle"):
        ckpt.find_bundle(newest)
    assert ckpt.resumable(run_dir) == run_dir / "checkpoints" / "step-000002"
    info = finish(base["cfg"], run_dir)
    assert info["sessions"][-1]["resumed_from"].endswith("step-000002")
    assert_matches_reference(base, run_dir)


def test_bundles_without_a_manifest_are_still_checked(killed_after_save3, tmp_path):
    """Bundles written before the manifest existed get structural checks: empty or truncated files are caught."""
    bundle = tmp_path / "old-style"
    shutil.copytree(killed_after_save3 / "checkpoints" / "step-000002", bundle)
    state = json.loads((bundle / "state.json").read_text())
    del state["files"]
    (bundle / "state.json").write_text(json.dumps(state))
    assert ckpt.validate_bundle(bundle) is None
    (bundle / "optimizer.pt").write_bytes((bundle / "optimizer.pt").read_bytes()[:-50])
    assert "optimizer.pt" in ckpt.validate_bundle(bundle)


def test_fresh_run_over_a_killed_first_save_starts_clean(base, monkeypatch):
    """Interrupted during its very first save, a run leaves only leftovers: a plain re-run (no --overwrite)
    starts clean instead of refusing ('already holds checkpoints') forever."""
    run_dir = killed_run(monkeypatch, base["cfg"], "k-first", "fsynced", 1)
    assert list((run_dir / "checkpoints").iterdir()), "the killed save left its temp dir"
    assert ckpt.resumable(run_dir) is None
    run({**base["cfg"], "name": "k-first"})
    assert_matches_reference(base, run_dir)
