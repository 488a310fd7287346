"""Checkpoints and handoff bundles: everything needed to continue a run on another machine.

A bundle is a directory:

    adapter/          PEFT adapter (+ tokenizer) — on its own, enough for ``--adapter-only``
    optimizer.pt      optimizer state (Adam moments)
    rng_rank{R}.pt    python / numpy / torch (and CUDA) RNG states of every rank
    config.yaml       the resolved recipe
    state.json        step, phase, data cursor (epoch, offset), schedule, counters, dataset fingerprint, and a
                      manifest (size + sha256) of every other file — written last

Crash safety. A bundle is written into a temporary sibling directory (``.step-….tmp``), every file and directory
in it is fsynced, and only then is it renamed into place (and the parent directory fsynced): without the fsync a
power loss after the rename can leave the new name pointing at empty files. Readers never trust a directory
because it has a ``state.json``: :func:`validate_bundle` checks the manifest (or, for bundles written before it
existed, that every file is non-empty and readable), and :func:`find_bundle` on a run directory takes the newest
*valid* bundle and reports the ones it skipped. Leftovers of a killed save (``.*.tmp``, ``.*.deleting``) are
removed by :func:`clean_stale` when the next run starts; they are never mistaken for checkpoints.

``_at(phase)`` marks each step of a save; the kill-at-every-phase test (tests/train/test_checkpoint_kill.py)
stops a run at each of them and checks that resume always succeeds from the newest valid bundle.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import ConfigError
from ..utils import atomic_write_json, atomic_write_text

FORMAT = 1
# Every point of a save where a crash leaves a different state on disk, in order.
SAVE_PHASES = ("adapter", "optimizer", "rng", "config", "state", "fsynced", "old_moved_aside", "renamed")
# Test hook: called with each phase name as the save passes it (None in normal runs).
_hook: Callable[[str], None] | None = None


def _at(phase: str) -> None:
    if _hook is not None:
        _hook(phase)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_adapter(model: Any, tokenizer: Any, out: Path) -> None:
    # save_embedding_layers=False: we never train embeddings, and "auto" would look the base up on the Hub.
    model.save_pretrained(str(out), safe_serialization=True, save_embedding_layers=False)
    tokenizer.save_pretrained(str(out))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    return {f.relative_to(root).as_posix(): {"size": f.stat().st_size, "sha256": _sha256(f)}
            for f in sorted(root.rglob("*")) if f.is_file()}


def _fsync_tree(root: Path) -> None:
    """fsync every file, then every directory bottom-up, so the data is on disk before the rename publishes it."""
    dirs = [root]
    for f in root.rglob("*"):
        if f.is_dir():
            dirs.append(f)
            continue
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for d in sorted(dirs, key=lambda p: -len(p.parts)):
        _fsync_dir(d)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def save_bundle(path: Path, *, model: Any, tokenizer: Any, optimizer: Any, state: dict[str, Any],
                config_yaml: str, rank_rng: list[dict[str, Any]]) -> Path:
    """Write a bundle crash-safely (main process only; ``rank_rng`` holds every rank's RNG state)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        save_adapter(model, tokenizer, tmp / "adapter")
        _at("adapter")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        _at("optimizer")
        for r, rng in enumerate(rank_rng):
            torch.save(rng, tmp / f"rng_rank{r}.pt")
        _at("rng")
        atomic_write_text(tmp / "config.yaml", config_yaml)
        _at("config")
        atomic_write_json(tmp / "state.json", {"format": FORMAT, **state, "files": _manifest(tmp)})
        _at("state")
        _fsync_tree(tmp)
        _at("fsynced")
        if path.exists():
            # A directory cannot be replaced by rename while it exists: move the old one aside first. A crash
            # between the two renames leaves `.NAME.old`, which find_bundle still considers.
            old = path.with_name(f".{path.name}.old")
            _discard(old)
            os.replace(path, old)
            _at("old_moved_aside")
            os.replace(tmp, path)
            _discard(old)
        else:
            os.replace(tmp, path)
        _at("renamed")
        _fsync_dir(path.parent)
    except BaseException:
        _discard(tmp)
        raise
    return path


# ------------------------------------------------------------------------------------------------ validation
def validate_bundle(bundle: Path) -> str | None:
    """Why ``bundle`` cannot be resumed from (one line), or None when it is complete and intact."""
    bundle = Path(bundle)
    f = bundle / "state.json"
    if not f.is_file():
        return "no state.json"
    try:
        state = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"state.json is unreadable ({exc})"
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return "state.json has no step counter"
    if state.get("format") != FORMAT:
        return f"bundle format {state.get('format')} is not supported (expected {FORMAT})"
    files = state.get("files")
    if isinstance(files, dict):
        for rel, meta in files.items():
            p = bundle / rel
            if not p.is_file():
                return f"{rel} is missing"
            if p.stat().st_size != meta.get("size"):
                return f"{rel} is {p.stat().st_size} bytes, {meta.get('size')} were written"
            if _sha256(p) != meta.get("sha256"):
                return f"{rel} does not match its checksum"
    return _structural_problem(bundle)


def _structural_problem(bundle: Path) -> str | None:
    """Checks that also hold for bundles written before the manifest existed."""
    cfg = bundle / "adapter" / "adapter_config.json"
    try:
        json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "adapter/adapter_config.json is missing or unreadable"
    weights = bundle / "adapter" / "adapter_model.safetensors"
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as fh:
            if not list(fh.keys()):
                return "adapter/adapter_model.safetensors holds no tensors"
    except Exception as exc:  # safetensors raises its own error types for truncated headers
        return f"adapter/adapter_model.safetensors is unreadable ({type(exc).__name__})"
    for name in ["optimizer.pt", *sorted(p.name for p in bundle.glob("rng_rank*.pt"))]:
        p = bundle / name
        # torch.save writes a zip archive; testzip() re-reads every member and checks its CRC.
        try:
            with zipfile.ZipFile(p) as z:
                if z.testzip() is not None:
                    return f"{name} is corrupt"
        except (OSError, zipfile.BadZipFile):
            return f"{name} is missing, empty or truncated"
    if not (bundle / "rng_rank0.pt").exists():
        return "rng_rank0.pt is missing"
    return None


def read_state(bundle: Path) -> dict[str, Any]:
    bundle = Path(bundle)
    problem = validate_bundle(bundle)
    if problem == "no state.json":
        raise ConfigError(f"{bundle}: not a training bundle (no state.json); pass a checkpoint or handoff dir")
    if problem:
        raise ConfigError(f"{bundle}: cannot resume from this bundle: {problem}")
    state = json.loads((bundle / "state.json").read_text(encoding="utf-8"))
    state.pop("files", None)
    return state


def load_rng(bundle: Path, rank: int) -> dict[str, Any] | None:
    f = Path(bundle) / f"rng_rank{rank}.pt"
    if not f.exists():  # resumed on more ranks than saved: new ranks keep their seeded state
        return None
    return torch.load(f, weights_only=False)


def load_optimizer(bundle: Path) -> dict[str, Any]:
    return torch.load(Path(bundle) / "optimizer.pt", weights_only=False)


def load_adapter_weights(model: Any, bundle: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(Path(bundle) / "adapter" / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ConfigError(f"{bundle}: adapter does not match this model/LoRA config (unexpected {unexpected[:3]})")


# ------------------------------------------------------------------------------------------------ discovery
_STEP_DIR = re.compile(r"step-(\d+)$")


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """``step-N`` directories in step order (valid or not; never the ``.tmp`` / ``.deleting`` leftovers)."""
    if not ckpt_root.exists():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_root.iterdir() if (m := _STEP_DIR.fullmatch(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def _step_of(bundle: Path) -> int:
    try:
        return int(json.loads((bundle / "state.json").read_text(encoding="utf-8"))["global_step"])
    except Exception:
        m = _STEP_DIR.fullmatch(bundle.name)
        return int(m.group(1)) if m else -1


def candidates(run_dir: Path) -> list[Path]:
    """Every bundle a run directory may hold, newest (highest step) first."""
    run_dir = Path(run_dir)
    found = [p for p in (run_dir / "handoff", run_dir / ".handoff.old") if p.is_dir()]
    found += list_checkpoints(run_dir / "checkpoints")
    return sorted(found, key=_step_of, reverse=True)


def newest_valid(run_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest intact bundle of a run directory, and the newer ones skipped with the reason."""
    skipped = []
    for p in candidates(run_dir):
        problem = validate_bundle(p)
        if problem is None:
            return p, skipped
        skipped.append((p, problem))
    return None, skipped


def resumable(run_dir: Path) -> Path | None:
    """The bundle a run directory would resume from, or None when it holds nothing to resume."""
    return newest_valid(run_dir)[0]


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = [p for p in list_checkpoints(Path(run_dir) / "checkpoints") if validate_bundle(p) is None]
    return ckpts[-1] if ckpts else None


def prune_checkpoints(ckpt_root: Path, keep: int) -> None:
    """Keep the newest ``keep`` step dirs. Each old one is renamed before it is deleted, so a crash half-way
    through a delete leaves a ``.deleting`` leftover, never a half-empty ``step-N`` that looks like a checkpoint."""
    for old in list_checkpoints(ckpt_root)[:-keep]:
        doomed = old.with_name(f".{old.name}.deleting")
        _discard(doomed)
        os.replace(old, doomed)
        _discard(doomed)


def clean_stale(run_dir: Path, keep: Path | None = None) -> list[Path]:
    """Remove what killed saves left behind (temp dirs, half-deleted checkpoints, a superseded ``.handoff.old``);
    ``keep`` is the bundle being resumed from, never removed. Returns what was removed."""
    run_dir = Path(run_dir)
    removed = []
    for root in (run_dir, run_dir / "checkpoints"):
        if not root.is_dir():
            continue
        for p in root.iterdir():
            if p.name.startswith(".") and (p.name.endswith(".tmp") or p.name.endswith(".deleting")):
                _discard(p)
                removed.append(p)
    old = run_dir / ".handoff.old"
    if old.exists() and (keep is None or old.resolve() != Path(keep).resolve()):
        step = _step_of(old)
        if any(p != old and _step_of(p) >= step and validate_bundle(p) is None for p in candidates(run_dir)):
            _discard(old)  # superseded: an intact bundle at least as advanced exists
            removed.append(old)
    return removed


def find_bundle(path: Path) -> Path:
    """A bundle path as given (checked), or for a run directory its newest valid handoff/checkpoint bundle."""
    path = Path(path)
    if (path / "state.json").exists():
        problem = validate_bundle(path)
        if problem:
            run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
            alt, _ = newest_valid(run_dir)
            hint = f"; the newest intact bundle of {run_dir} is {alt} (resume with --resume {run_dir})" if alt \
                else ""
            raise ConfigError(f"{path}: cannot resume from this bundle: {problem}{hint}")
        return path
    found, skipped = newest_valid(path)
    if found is None:
        why = "; ".join(f"{p.name}: {problem}" for p, problem in skipped)
        raise ConfigError(f"{path}: no handoff bundle or checkpoint to resume from" + (f" ({why})" if why else ""))
    return found
