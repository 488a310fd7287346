"""Sharing a trained assistant: merge the LoRA, export GGUF + an Ollama Modelfile, write the model card, push.

Modules, one concern each:

* ``merge``   – fold a LoRA adapter into a 16/32-bit base and prove the merged logits match the adapter's.
* ``gguf``    – HF checkpoint → GGUF through the llama.cpp converter (kept in its own venv), then reload-check.
* ``ollama``  – the Modelfile: chat template as a Go template, stop tokens, default system prompt.
* ``inputs``  – tolerant readers for the run, eval, audit and KB artefacts a card is built from.
* ``card``    – the model card (metadata, model-index, limitations) validated with ``huggingface_hub``.
* ``bundle``  – assemble the Hub-ready folder and ``versions.json``.
* ``hub``     – the upload plan (dry run) and the real push with ``HfApi``.
"""


class PublishError(Exception):
    """Something the user can fix (missing run file, bad repo id, conversion failure); printed as one line."""


def check_out_dir(path, marker: str) -> None:
    """Refuse to replace a non-empty folder we did not write: outputs are swapped in whole (atomic rename),
    so ``--out .`` or ``--out ~/models`` would otherwise delete what was there. Our own earlier output
    (it holds ``marker``) is fine to replace."""
    from pathlib import Path

    path = Path(path)
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / marker).exists())):
        raise PublishError(f"--out {path} exists and was not written by this command (no {marker}); "
                           "choose a new or empty folder")
