"""Upload a publish folder to the Hugging Face Hub, or (dry run) list exactly what would be uploaded.

The push is plain ``huggingface_hub``: ``HfApi.create_repo(exist_ok=True)`` then ``upload_folder``. The token
comes from ``HF_TOKEN`` or the stored ``hf auth login``; ``HF_ENDPOINT`` selects another Hub (the tests point it
at a local fake that records the calls). Before uploading we ask the Hub to validate the card's YAML, so a card
the Hub would reject fails here rather than after the weights are up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import PublishError

# Files the Hub stores with LFS/Xet rather than git (by extension); sizes matter for the user's upload time.
BINARY_SUFFIXES = (".safetensors", ".bin", ".gguf", ".png", ".parquet", ".pt")
IGNORE = (".*", "**/.*", "__pycache__/**")


@dataclass
class PlannedFile:
    path: str
    bytes: int
    storage: str  # "lfs" (large/binary) or "git"


def upload_plan(folder: str | Path) -> list[PlannedFile]:
    """Every file ``upload_folder`` would send (hidden files and temp dirs are skipped, as we skip them there)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder}: no such folder to upload")
    plan = []
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if not f.is_file() or any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        size = f.stat().st_size
        storage = "lfs" if f.suffix in BINARY_SUFFIXES or size > 10 * 1024 * 1024 else "git"
        plan.append(PlannedFile(rel.as_posix(), size, storage))
    return plan


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def check_repo_id(repo_id: str) -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if repo_id.count("/") != 1:
        raise PublishError(f"--repo-id {repo_id!r}: use the form user/name (or org/name)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"--repo-id {repo_id!r}: {exc}") from exc
    return repo_id


def push(folder: str | Path, repo_id: str, repo_type: str = "model", private: bool = False,
         token: str | None = None, commit_message: str | None = None,
         validate: bool = True) -> dict[str, Any]:
    """Create the repo if needed and upload the folder in one commit; returns the commit details."""
    from huggingface_hub import DatasetCard, HfApi, ModelCard
    from huggingface_hub.errors import HfHubHTTPError

    folder = Path(folder)
    check_repo_id(repo_id)
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise PublishError("HF_HUB_OFFLINE is set: unset it to push (or drop --push for a dry run)")
    api = HfApi(token=token)  # endpoint: HF_ENDPOINT, the same one ModelCard.validate posts to
    if api.token is None and token is None:
        from huggingface_hub import get_token

        if get_token() is None:
            raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a write token)")
    readme = folder / "README.md"
    try:
        if validate and readme.exists():
            card_cls = DatasetCard if repo_type == "dataset" else ModelCard
            # ModelCard.validate posts to {HF_ENDPOINT}/api/validate-yaml, i.e. the Hub's own metadata checker.
            card_cls.load(readme).validate(repo_type=repo_type)
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                   commit_message=commit_message or "Upload with studyabroadgpt publish",
                                   ignore_patterns=list(IGNORE))
    except ValueError as exc:  # card validation failures
        raise PublishError(f"the Hub rejected {readme}: {exc}") from exc
    except HfHubHTTPError as exc:
        raise PublishError(f"push to {repo_id} failed: {exc}") from exc
    return {"repo_url": str(url), "repo_id": repo_id, "repo_type": repo_type, "commit_url": commit.commit_url,
            "commit_oid": commit.oid, "files": len(upload_plan(folder))}
