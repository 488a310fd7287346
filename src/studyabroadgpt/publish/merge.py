"""Fold a LoRA adapter into its base model and prove the result computes the same function.

QLoRA trains against a 4-bit base, but a merged checkpoint must be written from a 16/32-bit base: adding the
low-rank update into NF4 weights would re-quantise it away. So the base is always loaded unquantised here, in the
dtype the user wants to ship, and the adapter is applied with PEFT's ``merge_and_unload``.

The check: run the same chat-formatted prompts through the adapter model (base + LoRA computed separately) and
through the merged model, and compare the next-token logits. A wrong base, a silently dropped module or a dtype
overflow shows up as a large max-abs difference; we fail above a per-dtype tolerance instead of shipping it.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import models
from ..utils import atomic_dir, atomic_write_json, fingerprint_paths, library_versions
from . import PublishError, check_out_dir

log = logging.getLogger(__name__)

# Allowed max |logit_merged - logit_adapter| over every position and vocabulary entry:
#   max(ABS_TOL[dtype], REL_TOL[dtype] * max |logit|).
# fp32 differs only by summation order. 16-bit formats round W + BA once when merging and every matmul rounds
# differently from the unmerged path, and that error compounds over the layers, so it scales with the logits.
# Measured on SmolLM2-135M (30 layers) with a small LoRA: fp32 1e-4, fp16 0.15, bf16 1.6 (logits up to ~25),
# i.e. ~6-8 units of the format's epsilon relative to the largest logit; the tolerances leave 2-3x headroom.
# A merge that drops or mis-scales the LoRA is off by the adapter's whole effect (reported beside it).
ABS_TOL = {"float32": 1e-3, "float16": 0.05, "bfloat16": 0.5}
REL_TOL = {"float32": 1e-5, "float16": 0.02, "bfloat16": 0.15}
TOLERANCE = ABS_TOL
DTYPES = tuple(TOLERANCE)

SAMPLE_PROMPTS = [
    "What documents do I need for a UK student visa?",
    "How much money must I show for a German blocked account?",
    "Can I work part-time while studying in Canada?",
    "Which English tests do Australian universities accept?",
]


@dataclass
class MergeReport:
    adapter: str
    base_model: str
    base_path: str
    dtype: str
    out: str
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    adapter_effect: float  # max |logit_adapter - logit_base|: the size of what the merge must preserve
    tolerance: float
    logit_scale: float  # max |logit| of the adapter model, what the relative tolerance scales with
    n_prompts: int
    adapter_fingerprint: str
    wall_time_s: float
    device: str = "cpu"
    library_versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_adapter_config(adapter_dir: str | Path) -> dict[str, Any]:
    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.exists():
        raise PublishError(f"{adapter_dir}: not a PEFT adapter directory (no adapter_config.json)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise PublishError(f"{cfg_path}: invalid JSON ({exc})") from exc
    if not any((adapter_dir / n).exists() for n in ("adapter_model.safetensors", "adapter_model.bin")):
        raise PublishError(f"{adapter_dir}: adapter_config.json present but no adapter_model.safetensors")
    return cfg


def base_source(adapter_cfg: dict[str, Any], override: str | None = None) -> str:
    """The base model an adapter was trained on, as a ``models.load`` source."""
    source = override or adapter_cfg.get("base_model_name_or_path")
    if not source:
        raise PublishError("adapter_config.json has no base_model_name_or_path; pass --base")
    return source


def public_base_name(source: str) -> str:
    """The name a model card should show for a base source (the Hub name for the embedded default)."""
    if source == models.DEFAULT_MODEL:
        return models.DEFAULT_NAME
    try:
        if Path(source).resolve() == Path(models.resolve(models.DEFAULT_MODEL)).resolve():
            return models.DEFAULT_NAME
    except Exception:  # noqa: BLE001 - the default may be unavailable; the source itself is then the answer
        pass
    return source


def _prompt_batches(tokenizer: Any, prompts: list[str]) -> list[Any]:
    batches = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        batches.append(ids)
    return batches


def _logits(model: Any, batches: list[Any]) -> list[Any]:
    import torch

    out = []
    with torch.inference_mode():
        for enc in batches:
            out.append(model(**enc.to(model.device)).logits.float().cpu())
    return out


def resolve_device(device: str) -> str:
    """``auto``: the GPU when there is one. A free Colab/Kaggle T4 has more GPU memory (16 GB) than CPU RAM
    (12-13 GB), so a 7B fp16 merge only fits there."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PublishError(f"--device {device}: no CUDA GPU is available")
    return device


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, dtype: str = "float16", base: str | None = None,
                  prompts: list[str] | None = None, tolerance: float | None = None,
                  device: str = "auto") -> MergeReport:
    """Merge ``adapter_dir`` into its base and write a safetensors checkpoint + tokenizer to ``out_dir``."""
    import torch
    from peft import PeftModel

    if dtype not in TOLERANCE:
        raise PublishError(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    check_out_dir(out_dir, "merge_info.json")
    started = time.perf_counter()
    adapter_dir = Path(adapter_dir)
    cfg = read_adapter_config(adapter_dir)
    source = base_source(cfg, base)
    prompts = prompts or SAMPLE_PROMPTS

    device = resolve_device(device)
    loaded = models.load(source, quantization=None, dtype=dtype,
                         device_map=None if device == "cpu" else {"": device})
    tokenizer = loaded.tokenizer
    batches = _prompt_batches(tokenizer, prompts)
    # How far the adapter moves the base: puts the merge error in scale (and exposes an all-zero adapter).
    base_logits = _logits(loaded.model, batches)
    peft_model = PeftModel.from_pretrained(loaded.model, str(adapter_dir))
    peft_model.eval()
    adapter_logits = _logits(peft_model, batches)
    effect = max(float((a - b).abs().max()) for a, b in zip(adapter_logits, base_logits))
    if effect == 0.0:
        log.warning("the adapter does not change the base model's logits (LoRA B matrices are zero?)")

    merged = peft_model.merge_and_unload()
    merged_logits = _logits(merged, batches)
    diffs = [(a - m).abs() for a, m in zip(adapter_logits, merged_logits)]
    logit_scale = max(float(a.abs().max()) for a in adapter_logits)
    if tolerance is None:
        tolerance = max(ABS_TOL[dtype], REL_TOL[dtype] * logit_scale)
    max_diff = max(float(d.max()) for d in diffs)
    mean_diff = float(torch.cat([d.flatten() for d in diffs]).mean())
    agree = [(a.argmax(-1) == m.argmax(-1)).float().mean() for a, m in zip(adapter_logits, merged_logits)]
    top1 = float(torch.stack(agree).mean())
    if not max_diff <= tolerance:  # also catches NaN
        raise PublishError(f"merged model disagrees with the adapter: max |Δlogit| = {max_diff:.4g} > {tolerance:g} "
                           f"({dtype}); refusing to write {out_dir}")

    report = MergeReport(
        adapter=str(adapter_dir), base_model=public_base_name(source), base_path=loaded.path, dtype=dtype,
        out=str(out_dir), max_abs_diff=max_diff, mean_abs_diff=mean_diff, top1_agreement=top1, adapter_effect=effect,
        tolerance=tolerance, logit_scale=logit_scale, n_prompts=len(prompts),
        adapter_fingerprint=fingerprint_paths([adapter_dir]),
        wall_time_s=round(time.perf_counter() - started, 2), device=device, library_versions=library_versions(),
    )
    # Recorded in the checkpoint's config so a merged model still says what it was made from.
    merged.config.dtype = getattr(torch, dtype)
    with atomic_dir(out_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "merge_info.json", report.to_dict())
    log.info("merged %s into %s (max |Δlogit| %.3g)", adapter_dir, out_dir, max_diff)
    return report
