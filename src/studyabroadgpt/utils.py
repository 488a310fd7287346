"""Small shared helpers: atomic writes, fingerprints, paths.

Every output of the pipeline goes through these so that a Ctrl-C or a SIGKILL never leaves a half-written
file or checkpoint behind: we write next to the target and `os.replace` into place (atomic on POSIX).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


def cache_dir() -> Path:
    """Where converted models and indexes are cached (``$STUDYABROADGPT_CACHE`` or ``~/.cache/studyabroadgpt``)."""
    root = os.environ.get("STUDYABROADGPT_CACHE") or Path.home() / ".cache" / "studyabroadgpt"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[Any]:
    """A binary file handle on a temporary file beside ``path``, fsynced and renamed over ``path`` when the block
    ends (readers see the old file or the whole new one); removed if the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Render a matplotlib figure to PNG and write it atomically, then close it (every plot goes through here,
    so a killed run never leaves a truncated PNG that a report then embeds)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` in one rename.

    Used for checkpoints, adapters and converted models: readers see either the old directory or the
    complete new one, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fingerprint_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def fingerprint_paths(paths: Iterable[str | Path]) -> str:
    """A content hash over files (directories are walked in sorted order)."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.name).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def fingerprint_obj(obj: Any) -> str:
    return fingerprint_bytes(json.dumps(obj, sort_keys=True, default=str).encode())


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (recorded next to every run and artefact)."""
    import importlib.metadata as md

    out = {}
    for name in ["studyabroadgpt", "torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes",
                 "datasets", "huggingface_hub", "sentence-transformers"]:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out
