"""Inputs for the publishing tests, built here so they do not depend on the train/eval/KB stages.

The adapter is a real PEFT LoRA on the tiny-random model. Its B matrices are filled with small random values
(PEFT initialises them to zero, which would make "merged equals adapter" trivially true).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2))


def make_adapter(out: Path, base: str = "tiny-random", seed: int = 0) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from studyabroadgpt import models

    torch.manual_seed(seed)
    model, _ = models.load(base)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    peft_model.peft_config["default"].base_model_name_or_path = base
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory) -> Path:
    return make_adapter(tmp_path_factory.mktemp("adapter") / "adapter")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, tiny_adapter) -> Path:
    """A training run folder with the shape the train stage writes."""
    import shutil

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = tmp_path_factory.mktemp("runs") / "quick"
    run.mkdir()
    shutil.copytree(tiny_adapter, run / "adapter")
    (run / "config.yaml").write_text(
        "model: default\nquantization: nf4\nlora:\n  r: 16\n  alpha: 32\n  dropout: 0.05\n"
        "  target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]\n"
        "train:\n  learning_rate: 0.0002\n  max_seq_length: 2048\n  epochs: 1\n  seed: 42\n"
        "system_prompt: You are a careful study-abroad advisor. Tell students to check official sources.\n")
    _write_json(run / "run_info.json", {"dataset_fingerprint": "abc123def4567890", "seed": 42,
                                        "library_versions": {"torch": "2.13.0", "peft": "0.21.2"},
                                        "dataset": "data/quickstart/train.jsonl"})
    losses = [2.9, 2.5, 2.2, 2.0, 1.9]
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": x}) + "\n"
                                               for i, x in enumerate(losses)))
    _write_json(run / "train_summary.json", {
        "base_model": "default", "first_loss": 2.9, "last_loss": 1.9, "min_loss": 1.9, "loss_reduction_pct": 34.5,
        "tokens_seen": 40960, "tokens_per_s": 250.3, "peak_memory_mb": 3400.0, "wall_time_s": 163.6, "steps": 5,
        "epochs": 1.0, "stopped_by": "time_budget", "dataset_fingerprint": "abc123def4567890", "seed": 42})
    fig, ax = plt.subplots()
    ax.plot(range(1, 6), losses)
    fig.savefig(run / "loss.png")
    plt.close(fig)
    return run


@pytest.fixture(scope="session")
def eval_dir(tmp_path_factory) -> Path:
    """An eval folder shaped like `sagpt eval report` output: comparisons are b − a with a = the baseline."""
    out = tmp_path_factory.mktemp("eval") / "quick-eval"
    out.mkdir()
    systems = ["base", "finetuned", "finetuned+rag"]

    def m(*triples):
        return {s: {"mean": a, "ci_low": b, "ci_high": c} for s, (a, b, c) in zip(systems, triples)}

    _write_json(out / "summary.json", {
        "systems": systems, "baseline": "base", "n_items": 40,
        "metrics": {
            "audit_error_rate": m((0.20, 0.10, 0.35), (0.275, 0.16, 0.43), (0.075, 0.03, 0.2)),
            "caveat_rate_policy": m((0.55, 0.4, 0.7), (0.30, 0.18, 0.46), (0.8, 0.65, 0.9)),
            "rougeL_f1": m((0.18, 0.15, 0.21), (0.24, 0.21, 0.27), (0.26, 0.23, 0.29))},
        "comparisons": [
            {"metric": "audit_error_rate", "a": "base", "b": "finetuned", "diff": 0.075, "ci_low": 0.01,
             "ci_high": 0.14, "verdict": "worse"},
            {"metric": "caveat_rate_policy", "a": "base", "b": "finetuned", "diff": -0.25, "ci_low": -0.4,
             "ci_high": -0.1, "verdict": "worse"},
            {"metric": "rougeL_f1", "a": "base", "b": "finetuned", "diff": 0.06, "ci_low": 0.03, "ci_high": 0.09,
             "verdict": "better"},
            {"metric": "audit_error_rate", "a": "base", "b": "finetuned+rag", "diff": -0.125, "ci_low": -0.2,
             "ci_high": -0.05, "verdict": "better"}],
        "judge": {"judge": "default", "a": "base", "b": "finetuned", "n_items": 40, "n_judged_items": 38,
                  "counts": {"win": 14, "tie": 6, "loss": 18},
                  "rates": {"win": {"rate": 14 / 38, "ci_low": 0.23, "ci_high": 0.53},
                            "tie": {"rate": 6 / 38, "ci_low": 0.07, "ci_high": 0.30},
                            "loss": {"rate": 18 / 38, "ci_low": 0.32, "ci_high": 0.63}},
                  "sign_tests": {"preference": {"b_higher": 14, "a_higher": 18, "ties": 6, "p_value": 0.597}}},
        "generation": {"base": {"samples_per_s": 0.4, "tokens_per_s": 22.0, "truncation_rate": 0.1}},
        "unavailable": {}})
    (out / "report.md").write_text("# Evaluation report\n\nfinetuned vs base: see summary.json\n")
    return out


@pytest.fixture(scope="session")
def audit_path(tmp_path_factory) -> Path:
    """The summary `sagpt audit FILE --out audit.jsonl` writes beside its per-answer report."""
    folder = tmp_path_factory.mktemp("audit")
    _write_json(folder / "audit.summary.json", {
        "source": "data/quickstart/train.jsonl", "answers": 40, "answers_with_error": 11,
        "error_rate": 0.275, "error_rate_ci95": [0.161, 0.428], "answers_with_contradiction": 6,
        "policy_sensitive_answers": 25, "missing_caveat": 17, "missing_caveat_rate": 0.68,
        "missing_caveat_rate_ci95": [0.485, 0.828], "answers_with_scaffolding": 0, "scaffolding_rate": 0.0,
        "claims": {"supported": 80, "unsupported": 9, "contradicted": 6}, "skipped_records": 0,
        "kb_version": "a1b2c3d4e5f60718", "retrieval": True})
    (folder / "audit.jsonl").write_text('{"id": "c1", "turn": 1, "has_error": true}\n')
    return folder / "audit.jsonl"
