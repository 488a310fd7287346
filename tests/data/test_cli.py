"""The real `sagpt data …` entry point on the shared sample and on broken files."""
import json

import yaml
from typer.testing import CliRunner

from studyabroadgpt.cli import app

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, list(map(str, args)), catch_exceptions=False)
    return result


def _count(path):
    return sum(1 for line in open(path) if line.strip())


def test_pipeline_on_real_sample(sample_path, tmp_path):
    r = run("data", "validate", sample_path, "--strict")
    assert r.exit_code == 0 and "valid" in r.output
    r = run("data", "clean", sample_path, "--out", tmp_path / "clean.jsonl")
    assert r.exit_code == 0 and _count(tmp_path / "clean.jsonl") == 8
    r = run("data", "dedup", tmp_path / "clean.jsonl", "--out", tmp_path / "dedup.jsonl")
    assert r.exit_code == 0
    report = json.loads((tmp_path / "dedup.dedup.json").read_text())
    assert report["kept"] + report["exact_removed"] + report["near_removed"] == 8
    r = run("data", "split", tmp_path / "dedup.jsonl", "--out-dir", tmp_path / "split")
    assert r.exit_code == 0
    split_report = json.loads((tmp_path / "split" / "split_report.json").read_text())
    assert split_report["cross_split_near_duplicates"] == 0
    assert _count(tmp_path / "split" / "train.jsonl") + _count(tmp_path / "split" / "test.jsonl") == report["kept"]
    r = run("data", "stats", tmp_path / "dedup.jsonl", "--tokenizer", "tiny-random", "--seq-len", "1024",
            "--out", tmp_path / "stats")
    assert r.exit_code == 0
    stats = json.loads((tmp_path / "stats" / "stats.json").read_text())
    assert stats["words"]["assistant"]["mean"] > 200 and stats["words"]["user"]["mean"] < 20
    assert stats["over_seq_len_share"] > 0.5  # long answers: most exceed 1,024 tokens
    assert (tmp_path / "stats" / "tokens_per_conversation.png").stat().st_size > 5000
    r = run("data", "card", tmp_path / "split", "--out", tmp_path / "card")
    assert r.exit_code == 0
    text = (tmp_path / "card" / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "mit" and meta["size_categories"] == ["n<1K"]
    assert {s["name"] for s in meta["dataset_info"]["splits"]} == {"train", "test"}
    from huggingface_hub import DatasetCard

    assert DatasetCard.load(tmp_path / "card" / "README.md").data.license == "mit"


def test_broken_inputs_never_crash_and_lose_nothing(broken_dir, tmp_path):
    files = ["bad_json.jsonl", "bad_roles.jsonl", "latin1.jsonl", "messages.json", "alpaca.csv", "messy.jsonl"]
    for name in files:
        q = tmp_path / f"{name}.q.jsonl"
        out = tmp_path / f"{name}.out.jsonl"
        r = run("data", "validate", broken_dir / name, "--quarantine", q, "--out", out)
        assert r.exit_code == 0, r.output
        n_in = sum(1 for line in open(broken_dir / name, "rb") if line.strip()) if name.endswith("jsonl") else None
        kept = _count(out)
        rejected = _count(q) if q.exists() else 0
        if n_in is not None:
            assert kept + rejected == n_in, name
        for row in (json.loads(line) for line in open(q)) if q.exists() else []:
            assert row["reasons"] and row["record"] is not None and row["line"] >= 1
    r = run("data", "validate", broken_dir / "bad_roles.jsonl", "--strict", "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 1
    assert "bad_roles.jsonl:1: conversations[1].role: unknown role 'robot'" in r.output.replace("\n", "")


def test_unreadable_file_is_one_clean_error(broken_dir):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "studyabroadgpt.cli", "data", "validate",
                           str(broken_dir / "broken.json")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "broken.json:2: invalid JSON" in proc.stderr and "Traceback" not in proc.stderr
