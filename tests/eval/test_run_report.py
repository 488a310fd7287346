"""The whole chain on the tiny model (generate → score → judge → report) and the CLI's error handling."""
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import pytest

from studyabroadgpt.config import ConfigError, load_config
from studyabroadgpt.eval.config import EvalConfig
from studyabroadgpt.eval.run import run_all

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A training run dir in the documented format (metrics.jsonl per step + train_summary.json)."""
    d = tmp_path_factory.mktemp("runs") / "tiny-lora"
    d.mkdir()
    rows = [{"step": s, "loss": 3.0 / (1 + 0.1 * s), "lr": 2e-4, "grad_norm": 1.0} for s in range(1, 31)]
    rows += [{"step": 30, "eval_loss": 2.9}]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "train_summary.json").write_text(json.dumps({"steps": 30, "train_loss": 0.75, "tokens_per_s": 250.0}))
    return d


@pytest.fixture(scope="module")
def chain(tmp_path_factory, sample_path, tiny_adapter, judge_url, run_dir):
    out = tmp_path_factory.mktemp("eval")
    cfg = EvalConfig.model_validate({
        "output_dir": str(out),
        "prompts": {"path": str(sample_path), "limit": 4},
        "model": {"base": "tiny-random", "adapter": str(tiny_adapter)},
        "endpoints": [{"name": "grounded", "base_url": judge_url}],
        "generation": {"max_new_tokens": 8, "batch_size": 4},
        "score": {"n_resamples": 200, "audit": False},
        "judge": {"endpoint": judge_url, "both_orders": True, "b": "grounded"},
        "report": {"run_dir": str(run_dir)},
    })
    return out, run_all(cfg, show_progress=False)


def test_chain_writes_summary_in_the_published_shape(chain):
    out, paths = chain
    s = json.loads((out / "summary.json").read_text())
    assert s["systems"] == ["base", "tuned", "grounded"] and s["n_items"] == 4
    for metric in ("bleu", "rougeL_f1", "bertscore_f1", "length_words", "truncation_rate"):
        for system in s["systems"]:
            assert set(s["metrics"][metric][system]) == {"mean", "ci_low", "ci_high"}
    comps = {(c["metric"], c["b"]) for c in s["comparisons"]}
    assert ("rougeL_f1", "tuned") in comps and ("rougeL_f1", "grounded") in comps
    assert all(c["a"] == "base" and c["verdict"] in {"better", "worse", "not distinguishable", "higher", "lower"}
               for c in s["comparisons"])
    assert s["judge"]["a"] == "base" and s["judge"]["b"] == "grounded"
    assert sum(s["judge"]["counts"].values()) + s["judge"]["unparseable_items"] == 4
    assert {"chi2", "df", "p_value"} <= set(s["judge"]["bowker"])
    for system in ("base", "tuned", "grounded"):
        assert set(s["generation"][system]) == {"samples_per_s", "tokens_per_s", "truncation_rate"}
    assert "audit disabled" in s["unavailable"]["audit_error_rate"]


def test_chain_report_is_self_contained_with_all_plots(chain):
    out, paths = chain
    for key in ("metrics", "judge", "lengths", "latency", "loss"):
        assert paths[key].exists() and paths[key].stat().st_size > 5000
    html = (out / "report.html").read_text()
    assert not re.search(r'src="(?!data:)', html)  # every image inlined
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 5 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    md = (out / "report.md").read_text()
    assert "## Verdicts" in md and "McNemar–Bowker" in md and "Not computed" in md and "samples/s" in md


def test_chain_without_judge_removes_a_stale_judgement(chain, tmp_path, sample_path, tiny_adapter):
    out, _ = chain
    cfg = load_config(EvalConfig, ROOT / "configs" / "eval-smollm2.yaml", [
        f"output_dir={tmp_path}", f"prompts.path={sample_path}", "prompts.limit=2", "model.base=tiny-random",
        f"model.adapter={tiny_adapter}", "generation.max_new_tokens=4", "score.n_resamples=100", "score.audit=false",
        "report.run_dir=null", "judge=null"])
    (tmp_path / "judge.json").write_text((out / "judge.json").read_text())
    run_all(cfg, show_progress=False)
    assert json.loads((tmp_path / "summary.json").read_text())["judge"] is None
    assert "Not run (no judge configured)" in (tmp_path / "report.md").read_text()


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("output_dir: x\nprompts: {path: p.csv}\nmodel: {base: default}\njudge: {both_orders: true}\n"
                   "generation: {max_new_token: 5}\n")
    with pytest.raises(ConfigError) as err:
        load_config(EvalConfig, bad)
    assert "generation.max_new_token" in str(err.value) and "judge" in str(err.value)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "studyabroadgpt.cli", "eval", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_cli_score_and_report_on_foreign_outputs_and_clean_errors(tmp_path):
    a = tmp_path / "mine.jsonl"
    b = tmp_path / "theirs.jsonl"
    a.write_text("".join(json.dumps({"id": str(i), "prompt": "q", "response": "short answer"}) + "\n"
                         for i in range(6)))
    b.write_text("".join(json.dumps({"id": str(i), "prompt": "q", "response": "a much longer answer " * 3}) + "\n"
                         for i in range(6)))
    res = _cli("score", str(a), str(b), "--out", str(tmp_path / "ev"), "--no-audit", "--resamples", "200")
    assert res.returncode == 0, res.stderr
    assert re.search(r"length_words\s+theirs - mine: \+10\.0000 .* higher", res.stdout)
    assert "rougeL_f1" in res.stdout and "unavailable: no reference" in res.stdout
    res = _cli("report", "--eval-dir", str(tmp_path / "ev"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "ev" / "report.html").exists() and (tmp_path / "ev" / "summary.json").exists()
    b.write_text(json.dumps({"id": "0", "prompt": "q"}) + "\n")
    res = _cli("score", str(a), str(b), "--out", str(tmp_path / "ev"))
    assert res.returncode == 2
    err = "".join(res.stderr.split())  # rich wraps long lines
    assert "theirs.jsonl:1:missingcolumn(s)response" in err and "Traceback" not in res.stderr


def test_cli_generate_from_endpoints_then_judge(tmp_path, judge_url):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("id,prompt\n1,Do I need a visa for Germany?\n2,Can I work in Canada?\n")
    res = _cli("generate", "-p", str(prompts), "-o", str(tmp_path / "ev"), "--base", "none",
               "--endpoint", f"grounded={judge_url}", "--endpoint", f"short={judge_url}", "--max-new-tokens", "6")
    assert res.returncode == 0, res.stderr
    assert "grounded:" in res.stdout and "short:" in res.stdout and "truncated 100%" in res.stdout
    rows = [json.loads(x) for x in (tmp_path / "ev" / "outputs.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["truncated"] and r["new_tokens"] == 6 for r in rows)
    res = _cli("judge", str(tmp_path / "ev" / "outputs.jsonl"), "-o", str(tmp_path / "ev"), "--endpoint", judge_url)
    assert res.returncode == 0, res.stderr
    assert "short vs grounded: win 0 / tie 2 / loss 0" in res.stdout
    res = _cli("generate", "-p", str(prompts), "-o", str(tmp_path / "x"), "--base", "none", "--endpoint", "nourl")
    assert res.returncode == 2 and "NAME=URL" in res.stderr


def test_cli_run_with_a_missing_adapter_fails_fast_and_clean(tmp_path):
    res = _cli("run", "--config", "configs/eval-smollm2.yaml", f"output_dir={tmp_path}", "model.adapter=/nonexistent")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "not a PEFT adapter directory" in " ".join(res.stderr.split())
