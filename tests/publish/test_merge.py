"""merge: a real LoRA on the tiny model, merged and compared against the unmerged adapter."""
from __future__ import annotations

import json

import pytest
import torch

from studyabroadgpt.publish import PublishError
from studyabroadgpt.publish.merge import merge_adapter


def _logits(model, tok, text="What is a blocked account?"):
    enc = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        return model(**enc).logits.float()


def test_merge_matches_adapter_and_reloads(tiny_adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from studyabroadgpt import models

    out = tmp_path / "merged"
    report = merge_adapter(tiny_adapter, out, dtype="float32")
    assert report.max_abs_diff <= report.tolerance == 1e-3
    # The check is only meaningful if the adapter moves the logits far more than the merge error.
    assert report.adapter_effect > 100 * max(report.max_abs_diff, 1e-7)
    assert report.top1_agreement == 1.0 and report.n_prompts == 4
    assert report.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not (out / "adapter_config.json").exists()
    info = json.loads((out / "merge_info.json").read_text())
    assert info["dtype"] == "float32" and info["adapter_fingerprint"] == report.adapter_fingerprint

    # Independent check: the saved checkpoint, reloaded from disk, computes what base + adapter computes.
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    base, tok = models.load("tiny-random")
    peft_model = PeftModel.from_pretrained(base, str(tiny_adapter))
    assert torch.allclose(_logits(merged, tok), _logits(peft_model, tok), atol=1e-4)


def test_merge_refuses_to_write_when_logits_disagree(tiny_adapter, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(PublishError, match="disagrees with the adapter"):
        merge_adapter(tiny_adapter, out, dtype="bfloat16", tolerance=0.0)
    assert not out.exists()  # nothing half-written


def test_merge_input_errors(tmp_path, tiny_adapter):
    with pytest.raises(PublishError, match="no adapter_config.json"):
        merge_adapter(tmp_path, tmp_path / "x")
    with pytest.raises(PublishError, match="--dtype"):
        merge_adapter(tiny_adapter, tmp_path / "x", dtype="int4")


def test_merge_cli_reports_and_fails_cleanly(tiny_adapter, tmp_path):
    from typer.testing import CliRunner

    from studyabroadgpt.cli import app

    from safetensors import safe_open

    runner = CliRunner()
    ok = runner.invoke(app, ["merge", "--adapter", str(tiny_adapter), "--out", str(tmp_path / "m"),
                             "--dtype", "float16"])
    assert ok.exit_code == 0, ok.output
    assert "max |Δlogit|" in " ".join(ok.output.split())
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    bad = runner.invoke(app, ["merge", "--adapter", str(tmp_path / "nope"), "--out", str(tmp_path / "m2")])
    assert bad.exit_code == 2
    assert "not a PEFT adapter directory" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_device_resolution():
    from studyabroadgpt.publish.merge import resolve_device

    assert resolve_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(PublishError, match="no CUDA GPU"):
            resolve_device("cuda")
