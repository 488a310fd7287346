"""publish: the Hub-ready folder, its model card (validated with huggingface_hub) and versions.json."""
from __future__ import annotations

import json

import pytest
import torch

from studyabroadgpt.publish import PublishError
from studyabroadgpt.publish.bundle import build_dataset_folder, publish_folder
from studyabroadgpt.publish.card import validate_card
from studyabroadgpt.publish.hub import upload_plan
from studyabroadgpt.publish.inputs import read_audit


@pytest.fixture(scope="module")
def published(run_dir, eval_dir, audit_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("pub") / "model"
    return publish_folder(run_dir, out, eval_dir=eval_dir, audit=audit_path, repo_id="someone/sagpt-smollm2",
                          dataset_id="someone/sagpt-data")


def test_card_metadata_validates(published):
    from huggingface_hub import ModelCard

    text = (published.out / "README.md").read_text()
    card = validate_card(text)
    data = ModelCard(text).data
    assert data.base_model == "tiny-random" and data.library_name == "peft"
    assert data.license == "apache-2.0" and data.language == ["en"] and data.pipeline_tag == "text-generation"
    assert data.datasets == ["someone/sagpt-data"]
    assert {"studyabroadgpt", "lora", "qlora"} <= set(data.tags)
    results = {r.metric_type: r for r in card.data.eval_results}
    # model-index carries the published system's numbers (finetuned, not the RAG variant or the base)
    assert results["audit_error_rate"].metric_value == 0.275
    assert results["caveat_rate_policy"].metric_value == 0.3
    assert results["rougeL_f1"].metric_value == 0.24
    assert results["judge_win_rate"].metric_value == round(14 / 38, 4)
    assert card.data.model_name == "sagpt-smollm2"


def test_card_states_limitations_plainly(published):
    body = (published.out / "README.md").read_text().split("---", 2)[2]
    lines = body.splitlines()
    headline = next(i for i, x in enumerate(lines) if x.startswith("> "))
    assert "worse than the base model" in lines[headline]  # the verdict comes first, not buried
    limits = body[body.index("## Limitations"):body.index("## Evaluation")]
    assert "27.5% (95% CI 16.0%–43.0%) vs 20.0% (95% CI 10.0%–35.0%) for the base model" in limits
    assert "Official-source caveat on policy-sensitive prompts" in limits
    assert "not distinguishable" in limits  # judge verdict
    assert "error rate**: 27.5% (95% CI 16.1%–42.8%) over 40 answers" in limits  # audit, Wilson CI
    assert "missing caveat rate**: 68.0% (95% CI 48.5%–82.8%) over 25 answers" in limits
    assert "a1b2c3d4e5f60718" in limits  # KB version from the audit
    training = body[body.index("## Training"):body.index("## How to use")]
    assert "2.900 → 1.900" in training and "34.5% reduction" in training
    assert "| LoRA rank / alpha / dropout | 8 / 16 / 0.0 |" in training
    assert "AutoPeftModelForCausalLM.from_pretrained(\"someone/sagpt-smollm2\")" in body
    assert "sagpt serve --model tiny-random --adapter ./model" in body
    assert "2504.15610" in body


def test_versions_and_folder_contents(published, run_dir):
    v = json.loads((published.out / "versions.json").read_text())
    assert v["dataset_fingerprint"] == "abc123def4567890" and v["seed"] == 42
    assert v["kb_version"] == "a1b2c3d4e5f60718"
    assert v["config"]["lora"]["r"] == 16 and len(v["config_fingerprint"]) == 16
    assert v["library_versions"]["torch"].startswith("2.13.0")
    assert v["training_library_versions"] == {"torch": "2.13.0", "peft": "0.21.2"}
    files = {f.path for f in upload_plan(published.out)}
    assert {"README.md", "versions.json", "adapter_config.json", "adapter_model.safetensors",
            "training/config.yaml", "training/train_summary.json", "training/loss.png", "training/metrics.jsonl",
            "eval/summary.json", "eval/report.md", "audit/audit.summary.json"} <= files
    plan = {f.path: f for f in upload_plan(published.out)}
    assert plan["adapter_model.safetensors"].storage == "lfs" and plan["README.md"].storage == "git"
    assert plan["adapter_model.safetensors"].bytes == (run_dir / "adapter" / "adapter_model.safetensors").stat().st_size


def test_published_adapter_loads_back_and_generates(published):
    from peft import PeftModel

    from studyabroadgpt import models

    base, tok = models.load("tiny-random")
    model = PeftModel.from_pretrained(base, str(published.out))
    enc = tok.apply_chat_template([{"role": "user", "content": "Visa?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 5


def test_card_without_eval_says_not_evaluated(run_dir, tmp_path):
    result = publish_folder(run_dir, tmp_path / "bare")
    text = (tmp_path / "bare" / "README.md").read_text()
    validate_card(text)
    assert "**Not evaluated.**" in text and "model-index" not in text
    assert "was not audited" in text
    assert any("--eval" in w for w in result.warnings) and any("--audit" in w for w in result.warnings)
    assert any("not a Hub id" in w for w in result.warnings)  # tiny-random
    other = publish_folder(run_dir, tmp_path / "named", base_model="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert not any("not a Hub id" in w for w in other.warnings)
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in (tmp_path / "named" / "README.md").read_text()


def test_merged_publish_is_a_transformers_model(run_dir, eval_dir, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM

    publish_folder(run_dir, tmp_path / "merged", eval_dir=eval_dir, merged=True, merge_dtype="float32")
    assert ModelCard.load(tmp_path / "merged" / "README.md").data.library_name == "transformers"
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert model.config.vocab_size > 0
    assert json.loads((tmp_path / "merged" / "versions.json").read_text())["merge"]["max_abs_diff"] < 1e-3


def test_dataset_folder_gets_a_valid_card(tmp_path, sample_path):
    from huggingface_hub import DatasetCard, DatasetCardData

    src = tmp_path / "data"
    src.mkdir()
    (src / "train.jsonl").write_text(sample_path.read_text())
    card = DatasetCard.from_template(DatasetCardData(license="mit", language=["en"], task_categories=[
        "text-generation"], pretty_name="advising"), template_str="---\n{{ card_data }}\n---\n# advising\n")
    (src / "README.md").write_text(str(card))
    out = build_dataset_folder(src, tmp_path / "data-out")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "train.jsonl"]
    (src / "README.md").unlink()
    with pytest.raises(PublishError, match="sagpt data card"):
        build_dataset_folder(src, tmp_path / "data-out2")


def test_bad_inputs_fail_with_file_names(tmp_path, run_dir):
    with pytest.raises(PublishError, match="no adapter/"):
        publish_folder(tmp_path, tmp_path / "o")
    bad_eval = tmp_path / "ev"
    bad_eval.mkdir()
    (bad_eval / "summary.json").write_text('{"systems": [1,\n')
    with pytest.raises(PublishError, match=r"summary.json:\d+: invalid JSON"):
        publish_folder(run_dir, tmp_path / "o", eval_dir=bad_eval)
    with pytest.raises(PublishError, match="not in the eval's systems"):
        from studyabroadgpt.publish.inputs import pick_systems
        pick_systems({"systems": ["base", "ft"]}, "nope")


def test_read_audit_accepts_the_per_answer_report_path(audit_path):
    audit = read_audit(audit_path)  # the .jsonl the user passed; the summary beside it is read
    assert audit.path.name == "audit.summary.json"
    assert audit.rates["error_rate"].n == 40 and audit.rates["missing_caveat_rate"].ci_low == 0.485


def test_null_statistics_are_shown_as_unavailable(run_dir, eval_dir, tmp_path):
    """eval writes null for NaN (e.g. a rate with no applicable items): the card says n/a, never crashes."""
    import shutil

    ev = tmp_path / "ev"
    shutil.copytree(eval_dir, ev)
    summary = json.loads((ev / "summary.json").read_text())
    summary["metrics"]["caveat_rate_policy"]["finetuned"] = {"mean": None, "ci_low": None, "ci_high": None}
    summary["comparisons"][1].update(diff=None, ci_low=None, ci_high=None)
    summary["judge"] = None
    (ev / "summary.json").write_text(json.dumps(summary))
    publish_folder(run_dir, tmp_path / "o", eval_dir=ev)
    text = (tmp_path / "o" / "README.md").read_text()
    card = validate_card(text)
    assert "caveat_rate_policy" not in {r.metric_type for r in card.data.eval_results}
    assert "| n/a | [n/a, n/a] | **worse** |" in text


def test_never_replaces_a_folder_it_did_not_write(run_dir, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(PublishError, match="was not written by this command"):
        publish_folder(run_dir, precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    publish_folder(run_dir, tmp_path / "pub")
    publish_folder(run_dir, tmp_path / "pub")  # our own earlier output is replaced in one piece
    assert (tmp_path / "pub" / "versions.json").exists()
