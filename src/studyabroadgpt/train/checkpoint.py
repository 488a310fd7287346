"""Checkpoints and handoff bundles: everything needed to continue a run on another machine.

A bundle is a directory written atomically (``utils.atomic_dir``: temp dir + rename), so a SIGKILL during a save
leaves the previous checkpoint intact and never a half-written one:

    adapter/          PEFT adapter (+ tokenizer) — on its own, enough for ``--adapter-only``
    optimizer.pt      optimizer state (Adam moments)
    rng_rank{R}.pt    python / numpy / torch (and CUDA) RNG states of every rank
    state.json        step, phase, data cursor (epoch, offset), schedule, counters, dataset fingerprint
    config.yaml       the resolved recipe
"""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from ..utils import atomic_dir, atomic_write_json, atomic_write_text

FORMAT = 1


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


def save_bundle(path: Path, *, model: Any, tokenizer: Any, optimizer: Any, state: dict[str, Any],
                config_yaml: str, rank_rng: list[dict[str, Any]]) -> Path:
    """Write a bundle atomically (main process only; ``rank_rng`` holds every rank's RNG state)."""
    with atomic_dir(path) as tmp:
        save_adapter(model, tokenizer, tmp / "adapter")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        for r, rng in enumerate(rank_rng):
            torch.save(rng, tmp / f"rng_rank{r}.pt")
        atomic_write_json(tmp / "state.json", {"format": FORMAT, **state})
        atomic_write_text(tmp / "config.yaml", config_yaml)
    return path


def read_state(bundle: Path) -> dict[str, Any]:
    bundle = Path(bundle)
    f = bundle / "state.json"
    if not f.exists():
        raise ConfigError(f"{bundle}: not a training bundle (no state.json); pass a checkpoint or handoff dir")
    state = json.loads(f.read_text())
    if state.get("format") != FORMAT:
        raise ConfigError(f"{f}: bundle format {state.get('format')} is not supported (expected {FORMAT})")
    if not (bundle / "adapter" / "adapter_config.json").exists():
        raise ConfigError(f"{bundle}: the adapter is missing from the bundle")
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


_STEP_DIR = re.compile(r"step-(\d+)$")


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    if not ckpt_root.exists():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = [p for p in list_checkpoints(Path(run_dir) / "checkpoints") if (p / "state.json").exists()]
    return ckpts[-1] if ckpts else None


def prune_checkpoints(ckpt_root: Path, keep: int) -> None:
    for old in list_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def find_bundle(path: Path) -> Path:
    """A bundle path as given, or for a run directory its most advanced handoff/checkpoint bundle."""
    path = Path(path)
    if (path / "state.json").exists():
        return path
    candidates = [p for p in [path / "handoff", latest_checkpoint(path)] if p and (p / "state.json").exists()]
    if not candidates:
        raise ConfigError(f"{path}: no handoff bundle or checkpoint to resume from")
    return max(candidates, key=lambda p: json.loads((p / "state.json").read_text())["global_step"])
