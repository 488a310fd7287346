"""Assemble the Hub-ready folder: weights, model card, training/eval/audit records, GGUF, versions.json.

Layout (what a user downloading the repo sees)::

    README.md              model card (metadata, model-index, limitations, usage, versions)
    adapter_config.json    + adapter_model.safetensors (or the merged checkpoint with --merged)
    versions.json          dataset fingerprint, KB version, config, library versions, seed
    training/              config.yaml, run_info.json, train_summary.json, metrics.jsonl, loss.png
    eval/                  summary.json, report.md/html and plots (when --eval)
    audit/                 the audit report (when --audit)
    gguf/                  GGUF files + Modelfile (when --gguf)

The dataset goes in a separate folder (its own Hub repo, of type dataset) with its dataset card.
The folder is built in a temp dir and renamed into place, so a killed publish leaves the old folder intact.
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import models
from ..utils import atomic_dir, atomic_write_json, atomic_write_text, fingerprint_obj, fingerprint_paths, \
    library_versions
from . import PublishError, check_out_dir
from .card import CardOptions, expected_results, render_card, validate_card
from .inputs import AuditInputs, EvalInputs, RunInputs, kb_version, read_audit, read_eval, read_run
from .merge import base_source, merge_adapter, public_base_name

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "vocab.json",
                 "merges.txt", "tokenizer.model", "generation_config.json")
DATASET_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


@dataclass
class PublishResult:
    out: Path
    card: Any
    versions: dict[str, Any]
    dataset_out: Path | None = None
    warnings: list[str] = field(default_factory=list)


def toolkit_version() -> str:
    try:
        return md.version("studyabroadgpt")
    except md.PackageNotFoundError:
        return "0.1.0"


def build_versions(run: RunInputs, ev: EvalInputs | None, kb: str | None) -> dict[str, Any]:
    info, summary = run.run_info, run.summary
    return {
        "toolkit": toolkit_version(),
        "created_utc": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "base_model": public_base_name(base_source(run.adapter_config)),
        "dataset": info.get("dataset"),
        "dataset_fingerprint": summary.get("dataset_fingerprint") or info.get("dataset_fingerprint"),
        "kb_version": kb,
        "config_fingerprint": fingerprint_obj(run.config) if run.config else None,
        "config": run.config or None,
        "seed": summary.get("seed", info.get("seed")),
        "adapter_fingerprint": fingerprint_paths([run.adapter_dir]),
        "eval_fingerprint": fingerprint_paths([ev.eval_dir / "summary.json"]) if ev else None,
        "training_library_versions": info.get("library_versions"),
        "library_versions": library_versions(),
    }


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def _hub_dataset_ids(run: RunInputs, dataset_id: str | None) -> list[str]:
    if dataset_id:
        return [dataset_id]
    from ..data.io import looks_like_hub_id

    source = run.run_info.get("dataset") or run.config.get("dataset")
    return [source] if isinstance(source, str) and looks_like_hub_id(source) else []


def build_dataset_folder(dataset_dir: Path, out: Path) -> Path:
    """Copy the dataset files and its card (from `sagpt data card`) into a Hub-ready dataset folder."""
    from huggingface_hub import DatasetCard

    if not dataset_dir.is_dir():
        raise PublishError(f"--dataset {dataset_dir}: expected the folder written by `sagpt data card`")
    readme = dataset_dir / "README.md"
    if not readme.exists():
        raise PublishError(f"{dataset_dir}: no README.md dataset card; run `sagpt data card {dataset_dir} "
                           f"--out {dataset_dir}` first")
    check_out_dir(out, "README.md")
    files = [p for p in sorted(dataset_dir.iterdir()) if p.is_file() and p.suffix in DATASET_SUFFIXES]
    if not files:
        raise PublishError(f"{dataset_dir}: no data files ({', '.join(DATASET_SUFFIXES)}) next to the card")
    card = DatasetCard(readme.read_text())
    for key in ("license", "task_categories"):
        if not getattr(card.data, key, None):
            raise PublishError(f"{readme}: dataset card metadata lacks {key}")
    with atomic_dir(out) as tmp:
        for f in files + [readme]:
            _copy(f, tmp / f.name)
    return out


def publish_folder(run_dir: str | Path, out: str | Path, eval_dir: str | Path | None = None,
                   audit: str | Path | None = None, dataset_dir: str | Path | None = None,
                   dataset_out: str | Path | None = None, merged: bool = False, merge_dtype: str = "float16",
                   gguf_dir: str | Path | None = None, repo_id: str | None = None, dataset_id: str | None = None,
                   license: str = "apache-2.0", system: str | None = None, model_name: str | None = None,
                   base_model: str | None = None) -> PublishResult:
    """Write the Hub-ready folder for a training run (see the module docstring for the layout)."""
    check_out_dir(out, "versions.json")
    run = read_run(run_dir)
    ev = read_eval(eval_dir, system) if eval_dir else None
    aud: AuditInputs | None = read_audit(audit) if audit else None
    # The KB the run was trained against, else the one the audit checked against, else the installed one.
    kb = run.run_info.get("kb_version") or (aud.data.get("kb_version") if aud else None) or kb_version()
    warnings = [f"run file missing: {name}" for name in run.missing]
    if ev is None:
        warnings.append("no --eval: the card will say the model is not evaluated")
    if aud is None:
        warnings.append("no --audit: the card will say the training data was not audited")
    versions = build_versions(run, ev, kb)
    if base_model:
        versions["base_model"] = base_model
    if versions["base_model"].count("/") != 1 or Path(versions["base_model"]).exists():
        # The Hub links an adapter to its base through this id; a local path would be a dead reference.
        warnings.append(f"base model {versions['base_model']!r} is not a Hub id; pass --base-model owner/name")
    source = base_source(run.adapter_config)
    gguf_files = sorted(p.name for p in Path(gguf_dir).glob("*.gguf")) if gguf_dir else []
    if gguf_dir and not gguf_files:
        raise PublishError(f"--gguf {gguf_dir}: no .gguf files inside; run `sagpt export gguf` first")
    opts = CardOptions(repo_id=repo_id, model_name=model_name or (repo_id.split("/")[-1] if repo_id else
                                                                f"studyabroadgpt-{run.run_dir.name}"),
                       base_model=versions["base_model"], base_source=source, merged=merged, license=license,
                       datasets=_hub_dataset_ids(run, dataset_id), gguf_files=gguf_files, kb_version=kb,
                       versions=versions)
    if not opts.datasets:
        warnings.append("no Hub dataset id for the card's `datasets` metadata (pass --dataset-id user/name)")
    out = Path(out)
    with atomic_dir(out) as tmp:
        if merged:
            report = merge_adapter(run.adapter_dir, tmp / ".merged", dtype=merge_dtype)
            for f in (tmp / ".merged").iterdir():
                shutil.move(str(f), tmp / f.name)
            (tmp / ".merged").rmdir()
            versions["merge"] = {"dtype": report.dtype, "max_abs_diff": report.max_abs_diff,
                                 "tolerance": report.tolerance}
        else:
            for name in ADAPTER_FILES:
                if (run.adapter_dir / name).exists():
                    _copy(run.adapter_dir / name, tmp / name)
        for f in run.files:
            _copy(f, tmp / "training" / f.name)
        if ev:
            for f in ev.files:
                _copy(f, tmp / "eval" / f.name)
        if aud:
            _copy(aud.path, tmp / "audit" / aud.path.name)
        if gguf_dir:
            for f in sorted(Path(gguf_dir).iterdir()):
                if f.is_file() and (f.suffix == ".gguf" or f.name in ("Modelfile", "export_report.json")):
                    _copy(f, tmp / "gguf" / f.name)
        card = render_card(run, opts, ev, aud)
        validate_card(str(card), expected_results(ev))
        atomic_write_text(tmp / "README.md", str(card))
        atomic_write_json(tmp / "versions.json", versions)
    result = PublishResult(out=out, card=card, versions=versions, warnings=warnings)
    if dataset_dir:
        result.dataset_out = build_dataset_folder(Path(dataset_dir),
                                                  Path(dataset_out) if dataset_out else out.with_name(
                                                      f"{out.name}-dataset"))
    return result
