"""GGUF export: converter venv, f16 + q8_0 conversion, reload with transformers, Modelfile."""
from __future__ import annotations

import json

import pytest

from studyabroadgpt.publish import PublishError
from studyabroadgpt.publish.gguf import convert, converter_dir, parse_types


def test_parse_types():
    assert parse_types("f16, q8_0,f16") == ["f16", "q8_0"]
    with pytest.raises(PublishError, match="llama-quantize"):
        parse_types("q4_k_m")
    with pytest.raises(PublishError):
        parse_types("")


def test_convert_refuses_adapters_and_non_checkpoints(tmp_path):
    adapter_like = tmp_path / "a"
    adapter_like.mkdir()
    (adapter_like / "config.json").write_text("{}")
    (adapter_like / "adapter_config.json").write_text("{}")
    with pytest.raises(PublishError, match="merge it first"):
        convert(adapter_like, tmp_path / "x.gguf", "f16")
    with pytest.raises(PublishError, match="no config.json"):
        convert(tmp_path, tmp_path / "x.gguf", "f16")


@pytest.mark.integration
def test_export_gguf_end_to_end(tiny_adapter, tmp_path):
    """Creates the converter venv on first use (pip, ~5 s), converts, reloads each GGUF and generates."""
    from typer.testing import CliRunner

    from studyabroadgpt.cli import app
    from studyabroadgpt.publish.merge import merge_adapter
    from studyabroadgpt.publish.ollama import CHATML_GO_TEMPLATE, parse_modelfile

    merged = tmp_path / "merged"
    merge_adapter(tiny_adapter, merged, dtype="float16")
    out = tmp_path / "gguf"
    result = CliRunner().invoke(app, ["export", "gguf", "--merged", str(merged), "--out", str(out),
                                      "--types", "f16,q8_0", "--max-new-tokens", "12",
                                      "--system", "Check official sources."])
    assert result.exit_code == 0, result.output
    assert (converter_dir() / ".ready").exists()
    report = json.loads((out / "export_report.json").read_text())
    f16, q8 = report["files"]["f16"], report["files"]["q8_0"]
    assert (out / f16["file"]).stat().st_size == f16["bytes"] > q8["bytes"] > 0
    # The f16 file must reproduce the merged fp16 checkpoint's greedy answer token for token.
    assert f16["check"]["greedy_identical"] is True and f16["check"]["new_tokens"] == 12
    assert q8["check"]["new_tokens"] > 0 and "loaded_with" in q8["check"]
    with open(out / f16["file"], "rb") as fh:
        assert fh.read(4) == b"GGUF"
    mf = parse_modelfile(out / "Modelfile")
    assert mf["from"] == f"./{q8['file']}" and mf["template"] == CHATML_GO_TEMPLATE
    assert mf["system"] == "Check official sources."
    # merge → GGUF → serve → answer: llama.cpp loads what we exported and answers through the server.
    reply = _answer_with_llamacpp(out / q8["file"], CHECK_PROMPT_SHORT, max_tokens=12)
    assert reply["finish_reason"] in ("stop", "length") and 0 < reply["completion_tokens"] <= 12


CHECK_PROMPT_SHORT = "What is a student visa?"


def _answer_with_llamacpp(gguf, question: str, max_tokens: int, grounded: bool = False) -> dict:
    """Serve ``gguf`` with ``--engine llamacpp`` (the real llama.cpp server process) and ask one question."""
    from openai import OpenAI

    from ..serve.conftest import running  # the serve tests' loopback server helper

    from studyabroadgpt.serve.answer import Answerer
    from studyabroadgpt.serve.app import create_app
    from studyabroadgpt.serve.llamacpp_engine import load_llamacpp_generator
    from studyabroadgpt.serve.settings import ServeSettings

    import asyncio

    gen = load_llamacpp_generator(str(gguf), parallel=1, ctx_per_slot=2048, threads=1)
    answerer = Answerer.from_kb(top_k=2, mode="generate") if grounded else Answerer(None, None)
    # Started before the app: loading the GGUF may outlast the test server's start-up wait on a busy machine.
    asyncio.run(gen.start())
    try:
        with running(create_app(gen, answerer, ServeSettings(rag=grounded, gate=grounded))) as base:
            client = OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=300)
            resp = client.chat.completions.create(model=gen.model_name, max_tokens=max_tokens,
                                                  messages=[{"role": "user", "content": question}])
            client.close()
    finally:
        asyncio.run(gen.close())
    assert not gen.process.running()  # stopped with the last user
    return {"content": resp.choices[0].message.content, "finish_reason": resp.choices[0].finish_reason,
            "completion_tokens": resp.usage.completion_tokens, "extra": resp.model_extra}


@pytest.mark.integration
def test_real_smollm2_q8_0_answers_and_stops(tmp_path):
    """The embedded SmolLM2-135M as q8_0: loads back, answers the check question and ends on <|im_end|>."""
    from studyabroadgpt import models
    from studyabroadgpt.publish.gguf import export_gguf

    report = export_gguf(models.resolve(models.DEFAULT_MODEL), tmp_path / "gguf", "q8_0", max_new_tokens=96)
    check = report.files["q8_0"]["check"]
    assert check["stopped"] is True, check
    assert len(check["answer"].split()) >= 5 and "visa" in check["answer"].lower()
    # 8-bit rounding may change a late token, but the start of the greedy answer must match the HF model's.
    assert check["greedy_prefix_match"] >= 10
    assert 100e6 < report.files["q8_0"]["bytes"] < 200e6
    # The exported file through llama.cpp, grounded and gated, answers the question on topic.
    reply = _answer_with_llamacpp(tmp_path / "gguf" / report.files["q8_0"]["file"], CHECK_PROMPT_SHORT,
                                  max_tokens=48, grounded=True)
    raw = reply["content"].split("**Sources**")[0].lower()
    assert reply["completion_tokens"] > 5 and "visa" in raw, reply["content"]
    assert reply["extra"]["sources"] and reply["extra"]["gate"]["enabled"]


def _write_small_gguf(path, rng):
    """A GGUF with what requantize must handle: metadata of several kinds, fp32 matrices, a 1-D norm and a
    matrix whose rows do not divide into 32-value blocks."""
    import numpy as np
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_uint32("llama.block_count", 1)
    w.add_string("general.name", "tiny")
    w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "b"])
    w.add_float32("llama.rope.freq_base", 10000.0)
    tensors = {"token_embd.weight": rng.standard_normal((8, 64)).astype(np.float32),
               "blk.0.ffn_up.weight": rng.standard_normal((16, 64)).astype(np.float32),
               "blk.0.attn_norm.weight": np.ones(64, dtype=np.float32),
               "blk.0.odd.weight": rng.standard_normal((4, 48)).astype(np.float32)}
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def test_requantize_writes_q4_0_keeps_metadata_and_exceptions(tmp_path):
    import numpy as np
    from gguf import GGMLQuantizationType as Q, GGUFReader, quants

    from studyabroadgpt.publish.gguf import requantize

    src = tmp_path / "src.gguf"
    original = _write_small_gguf(src, np.random.default_rng(0))
    out = requantize(src, tmp_path / "out.gguf", "Q4_0", keep={"token_embd.weight": "Q8_0"})
    r = GGUFReader(str(out))
    types = {t.name: t.tensor_type for t in r.tensors}
    assert types == {"token_embd.weight": Q.Q8_0, "blk.0.ffn_up.weight": Q.Q4_0,
                     "blk.0.attn_norm.weight": Q.F32, "blk.0.odd.weight": Q.F32}
    assert r.fields["general.name"].contents() == "tiny"
    assert r.fields["tokenizer.ggml.tokens"].contents() == ["<s>", "a", "b"]
    assert r.fields["llama.block_count"].contents() == 1 and r.fields["general.file_type"].contents() == 2
    for t in r.tensors:
        got = quants.dequantize(t.data, t.tensor_type).reshape(original[t.name].shape)
        # Q4_0: 16 levels per block of 32, so the error stays within one step (max |x| / 8) of the original.
        bound = {Q.Q4_0: np.abs(original[t.name]).max() / 8, Q.Q8_0: np.abs(original[t.name]).max() / 100,
                 Q.F32: 0.0}[t.tensor_type]
        assert np.abs(got - original[t.name]).max() <= bound + 1e-6, t.name
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
    with pytest.raises(PublishError, match="choose from"):
        requantize(src, tmp_path / "x.gguf", "q4_k_m")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(PublishError, match="not a readable GGUF"):
        requantize(bad, tmp_path / "y.gguf")
