"""The ``studyabroadgpt`` / ``sagpt`` command line.

Each pipeline stage owns its commands in ``<stage>/cli.py`` and exposes ``register(app)``; this module only
assembles them and gives every command the same exit codes, so CI can tell a crash from bad data:

    0  ok
    1  records rejected under ``--strict`` (the command ran; the data was not clean)
    2  usage or configuration error: bad option, bad config, a source that cannot be read, a missing model
       (one line naming the file, line and field)
    3  internal error: a bug, not the user's input; one line with the log file that holds the traceback
  130  interrupted (outputs are written atomically; re-run to resume)

The mapping lives in :class:`SagptGroup`, the root command's ``invoke``, so it holds for ``sagpt`` and for
in-process callers (typer's ``CliRunner``) alike.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import time
import traceback
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

# The one place these are set, at import, before any stage module can import torch (so in-process callers such
# as typer's CliRunner get them too). Measured: on a busy 2-core machine, OpenMP threads spinning while waiting
# made training 5-10x slower (docs/training.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class SagptGroup(TyperGroup):
    """The root command: maps what a command raises onto the exit codes above (never a traceback on screen)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer.Exit(1) for --strict, usage errors (exit 2) and --help keep their own codes
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: outputs are written atomically, re-run to resume")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if isinstance(exc, _expected_errors()):
                # the message comes from the user's data or config and may hold "[/]": never read it as markup
                err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
                raise typer.Exit(EXIT_USAGE) from None
            log = write_crash_log(exc)
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            err_console.print(f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(first)} "
                              f"(a bug, not your input; traceback in {escape(str(log))})", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(EXIT_INTERNAL) from None


def log_dir() -> Path:
    """Where crash logs go: ``$STUDYABROADGPT_LOG_DIR`` or ``<cache>/logs``."""
    from .utils import cache_dir

    root = os.environ.get("STUDYABROADGPT_LOG_DIR")
    path = Path(root) if root else cache_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_crash_log(exc: BaseException) -> Path:
    """Write the traceback of an internal error with the command line; return the file's path."""
    path = log_dir() / f"sagpt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = (f"command: {' '.join(sys.argv)}\ntime: {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    try:
        path.write_text(text, encoding="utf-8", errors="backslashreplace")
    except OSError:  # an unwritable log dir must not hide the error itself
        path = Path(os.devnull)
    return path


app = typer.Typer(
    cls=SagptGroup,
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
    "studyabroadgpt.review.cli",
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
    app()


if __name__ == "__main__":
    main()
