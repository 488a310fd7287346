"""publish --push through the real huggingface_hub client against a local fake Hub (tests/publish/fake_hub.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from studyabroadgpt.publish import PublishError
from studyabroadgpt.publish.hub import check_repo_id, push, upload_plan

from .fake_hub import FakeHub

ROOT = Path(__file__).resolve().parents[2]


def _dataset_dir(tmp_path: Path, sample_path: Path) -> Path:
    from huggingface_hub import DatasetCard, DatasetCardData

    src = tmp_path / "dataset"
    src.mkdir()
    (src / "train.jsonl").write_text(sample_path.read_text())
    card = DatasetCard.from_template(DatasetCardData(license="mit", language=["en"],
                                                     task_categories=["text-generation"]),
                                     template_str="---\n{{ card_data }}\n---\n# advising conversations\n")
    (src / "README.md").write_text(str(card))
    return src


def test_cli_push_uploads_every_planned_file(run_dir, eval_dir, audit_path, sample_path, tmp_path):
    """End to end: `sagpt publish --push` in a subprocess with HF_ENDPOINT at the fake; model + dataset repos."""
    out = tmp_path / "pub"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    with FakeHub() as hub:
        env.update(HF_ENDPOINT=hub.endpoint, HF_TOKEN="hf_test_token", HF_HUB_DISABLE_TELEMETRY="1",
                   STUDYABROADGPT_CACHE=os.environ.get("STUDYABROADGPT_CACHE", str(Path.home() / ".cache" /
                                                                                  "studyabroadgpt")))
        proc = subprocess.run(
            [sys.executable, "-m", "studyabroadgpt.cli", "publish", "--run", str(run_dir), "--eval", str(eval_dir),
             "--audit", str(audit_path), "--dataset", str(_dataset_dir(tmp_path, sample_path)),
             "--dataset-id", "someone/sagpt-data", "--out", str(out), "--push", "--repo-id", "someone/sagpt-model",
             "--private"], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        state = hub.state
    model = state.repos["model:someone/sagpt-model"]
    assert model["private"] is True
    planned = {f.path: f.bytes for f in upload_plan(out)}
    assert set(model["files"]) == set(planned)  # everything in the dry-run plan arrived, nothing else
    for path, data in model["files"].items():
        assert data == (out / path).read_bytes(), path
    dataset = state.repos["dataset:someone/sagpt-data"]
    assert set(dataset["files"]) == {"README.md", "train.jsonl"}
    assert {v["repoType"] for v in state.validated} >= {"model", "dataset"}  # Hub-side card validation ran
    writes = [a for p, a in state.auth if p != "/api/validate-yaml"]
    assert len(writes) == 6 and set(writes) == {"Bearer hf_test_token"}  # create+preupload+commit, x2 repos
    assert "pushed" in proc.stderr


def test_dry_run_lists_files_and_sizes(run_dir, eval_dir, tmp_path):
    from typer.testing import CliRunner

    from studyabroadgpt.cli import app

    out = tmp_path / "dry"
    result = CliRunner().invoke(app, ["publish", "--run", str(run_dir), "--eval", str(eval_dir), "--out", str(out)],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    for f in upload_plan(out):
        assert f.path in result.output
    assert "dry run: nothing uploaded" in result.output
    assert f"{len(upload_plan(out))} files" in result.output


def test_push_in_process_with_real_client(run_dir, tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    from studyabroadgpt.publish.bundle import publish_folder

    folder = publish_folder(run_dir, tmp_path / "p").out
    with FakeHub() as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        info = push(folder, "someone/again", token="hf_x")
        info2 = push(folder, "someone/again", token="hf_x", commit_message="second")  # exist_ok: same repo
    assert info["commit_url"].startswith(hub.endpoint) and info2["commit_oid"] != info["commit_oid"]
    assert [c["summary"] for c in hub.state.commits] == ["Upload with studyabroadgpt publish", "second"]


def test_push_refuses_offline_bad_ids_and_missing_token(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("x")
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE"):
        push(tmp_path, "user/name", token="hf_x")  # conftest forces offline
    for bad in ("noslash", "a/b/c", "user/bad name"):
        with pytest.raises(PublishError, match="--repo-id"):
            check_repo_id(bad)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(PublishError, match="no Hugging Face token"):
        push(tmp_path, "user/name")
