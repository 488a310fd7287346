"""`sagpt kb validate|stale|search`, `sagpt audit` and `sagpt synth` end to end."""
from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from studyabroadgpt.cli import app
from studyabroadgpt.data.load import load_valid

runner = CliRunner(env={"COLUMNS": "200"})


def run(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_validate_ok_and_broken(fixture_kb_path, tmp_path):
    ok = run("kb", "validate", str(fixture_kb_path))
    assert ok.exit_code == 0 and "22 valid facts" in ok.output and "no errors found" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(fixture_kb_path.read_text().replace("https://www.gov.uk/student-visa\n",
                                                       "http://www.gov.uk/student-visa\n", 1))
    res = run("kb", "validate", str(bad), "--json")
    assert res.exit_code == 1
    issues = json.loads(res.output)["issues"]
    assert issues[0]["fact_id"] == "gb.visa.student-route" and issues[0]["field"] == "source_url"
    assert issues[0]["line"] == 3


def test_stale(fixture_kb_path):
    res = run("kb", "stale", "--kb", str(fixture_kb_path), "--today", "2026-02-01", "--fail")
    assert res.exit_code == 1 and "4 of 22 entries due for review" in res.output
    assert run("kb", "stale", "--kb", str(fixture_kb_path), "--today", "2025-07-01").exit_code == 0


def test_bad_input_is_one_clean_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "studyabroadgpt.cli", "kb", "stale", "--today", "soon"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "not an ISO date" in proc.stderr and "Traceback" not in proc.stderr


def test_search(fixture_kb_path, tmp_path):
    res = run("kb", "search", "how many hours can I work in Dublin", "--kb", str(fixture_kb_path), "-k", "2",
              "--index-dir", str(tmp_path / "idx"))
    assert res.exit_code == 0 and "ie.visa.stamp2" in res.output
    res = run("kb", "search", "work hours", "--kb", str(fixture_kb_path), "--destination", "Canada",
              "--index-dir", str(tmp_path / "idx"))
    assert "ca.work.off-campus" in res.output and "ie.visa" not in res.output


def test_audit_sharegpt_sample(sample_path, fixture_kb_path, tmp_path):
    out = tmp_path / "report.jsonl"
    res = run("audit", str(sample_path), "--kb", str(fixture_kb_path), "--out", str(out))
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert len(rows) == summary["answers"] == 24
    assert summary["answers_with_error"] == sum(r["has_error"] for r in rows)
    lo, hi = summary["error_rate_ci95"]
    assert lo <= summary["error_rate"] <= hi
    assert summary["answers_with_scaffolding"] >= 12  # the sample's "Clear statement:" template labels
    assert out.with_suffix(".png").stat().st_size > 5000
    assert "answers with contradicted or unsupported claims" in res.output


def test_audit_model_outputs_csv(fixture_kb_path, tmp_path):
    path = tmp_path / "outputs.csv"
    path.write_text('id,prompt,response\n'
                    'a,How many hours can I work in the UK?,"On a UK Student visa you can work 20 hours per week. '
                    'Check the official GOV.UK page."\n'
                    'b,How many hours can I work in the UK?,"You can work 35 hours per week in the UK."\n')
    out = tmp_path / "r.jsonl"
    res = run("audit", str(path), "--kb", str(fixture_kb_path), "--out", str(out))
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert not rows["a"]["has_error"] and not rows["a"]["missing_caveat"]
    assert rows["b"]["has_error"] and rows["b"]["n_contradicted"] == 1 and rows["b"]["missing_caveat"]


def test_synth_cli_output_passes_data_validation(tmp_path):
    out = tmp_path / "synth.jsonl"
    res = run("synth", "--n", "30", "--seed", "1", "--out", str(out))
    assert res.exit_code == 0, res.output
    loaded = load_valid(out)
    convs, rejected = loaded.conversations, loaded.quarantined
    assert len(convs) == 30 and rejected == []
    summary = json.loads((tmp_path / "synth.synth.json").read_text())
    assert summary["kept"] == 30 and summary["quarantined"] == 0 and 0 <= summary["near_duplicate_rate"] <= 1


def test_synth_cli_openai_needs_endpoint(tmp_path):
    # the root command turns a ConfigError into exit 2 with one printed line (no traceback)
    res = runner.invoke(app, ["synth", "--n", "1", "--out", str(tmp_path / "x.jsonl"), "--backend", "openai"])
    assert res.exit_code == 2 and "--base-url and --model" in res.output
