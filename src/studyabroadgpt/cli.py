"""The ``studyabroadgpt`` / ``sagpt`` command line.

Each pipeline stage owns its commands in ``<stage>/cli.py`` and exposes ``register(app)``; this module only
assembles them and turns expected errors (bad data, bad config, missing model) into one clear line and exit 2
instead of a traceback.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys

import typer
from rich.console import Console

# The one place these are set, at import, before any stage module can import torch (so in-process callers such
# as typer's CliRunner get them too). Measured: on a busy 2-core machine, OpenMP threads spinning while waiting
# made training 5-10x slower (docs/training.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="studyabroadgpt",
    help="Build, evaluate and serve a grounded study-abroad advising assistant (QLoRA on free hardware).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)

# Stage modules in pipeline order; each provides register(app).
STAGES = [
    "studyabroadgpt.data.cli",
    "studyabroadgpt.kb.cli",
    "studyabroadgpt.synth.cli",
    "studyabroadgpt.train.cli",
    "studyabroadgpt.eval.cli",
    "studyabroadgpt.publish.cli",
    "studyabroadgpt.serve.cli",
    "studyabroadgpt.quickstart",
]


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for _name in STAGES:
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name).register(app)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .data.io import DataError
    from .models import ModelLoadError

    errors: list[type[BaseException]] = [ConfigError, DataError, ModelLoadError]
    for mod, name in [("studyabroadgpt.kb.schema", "KBError"), ("studyabroadgpt.publish", "PublishError")]:
        if importlib.util.find_spec(mod) is not None:
            errors.append(getattr(importlib.import_module(mod), name))
    return tuple(errors)


def main() -> None:
    try:
        app()
    except _expected_errors() as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: outputs are written atomically, re-run to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
