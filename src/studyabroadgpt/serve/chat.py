"""``sagpt chat``: the same grounded, gated advising turn in a terminal, rendered as rich Markdown.

Reads questions from the terminal (or from piped stdin, one per line, for scripts and tests). Commands:
``/reset`` starts a new conversation, ``/quit`` leaves.
"""
from __future__ import annotations

import asyncio
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel

from .answer import Answerer, stream_turn
from .gate import GateChange
from .generation import GenParams, Generator


async def _stream_turn(generator: Generator, answerer: Answerer, history: list[dict[str, str]],
                       params: GenParams, console: Console, rag: bool, gate: bool) -> tuple[str, dict]:
    turn = answerer.prepare(history, rag=rag, gate=gate)
    parts: list[str] = []
    if console.is_terminal and turn.generates:
        # Live re-renders the Markdown as tokens arrive, then shows the gated answer in its place.
        with Live(Markdown(""), console=console, refresh_per_second=8, transient=True) as live:
            async for piece in stream_turn(generator, turn, params):
                parts.append(piece.text)
                live.update(Markdown("".join(parts)))
    else:
        async for piece in stream_turn(generator, turn, params):
            parts.append(piece.text)
    final = answerer.finish(turn, "".join(parts))
    console.print(Markdown(final.content))
    console.print(f"[dim]answered by: {_mode_label(final)}[/]")
    if final.gate.get("changed"):
        console.print(Panel(_gate_summary(final.gate), title="fact check", border_style="yellow"))
    return final.content, final.gate


def _mode_label(final) -> str:
    """Which mode answered, as the web page shows it too."""
    labels = {"generate": "the model (checked by the fact gate)", "compose": "composed from the official facts",
              "out_of_scope": "no official information (honest answer)"}
    label = labels.get(final.mode, final.mode)
    reason = final.gate.get("fallback_reason")
    return f"{label}: {reason}" if reason else label


def _gate_summary(gate: dict) -> str:
    """One line per notable change: the same ``GateChange.describe()`` the stream note uses."""
    changes = [GateChange(**{k: v for k, v in c.items() if k != "text"}) for c in gate["changes"]]
    return "\n".join(c.describe() for c in changes if c.notable or c.action == "added_caveat")


def run_chat(generator: Generator, answerer: Answerer, params: GenParams, console: Console | None = None,
             stdin: IO[str] | None = None, rag: bool = True, gate: bool = True) -> int:
    """Run the chat loop until /quit or end of input; returns the number of answered questions."""
    import sys

    console = console or Console()
    stdin = stdin or sys.stdin
    interactive = stdin.isatty() and console.is_terminal
    loop = asyncio.new_event_loop()
    loop.run_until_complete(generator.start())
    history: list[dict[str, str]] = []
    answered = 0
    console.print(f"[bold]StudyAbroadGPT[/] ({generator.model_name}; grounding {'on' if rag else 'off'}). "
                  "Type a question; /reset for a new conversation, /quit to leave.")
    try:
        while True:
            if interactive:
                line = console.input("[bold cyan]you>[/] ")
            else:
                line = stdin.readline()
                if not line:
                    break
                console.print(f"[bold cyan]you>[/] {line.strip()}")
            question = line.strip()
            if not question:
                continue
            if question in ("/quit", "/exit"):
                break
            if question == "/reset":
                history = []
                console.print("[dim]new conversation[/]")
                continue
            history.append({"role": "user", "content": question})
            answer, _ = loop.run_until_complete(
                _stream_turn(generator, answerer, history, params, console, rag, gate))
            history.append({"role": "assistant", "content": answer})
            answered += 1
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        loop.run_until_complete(generator.close())
        loop.close()
    return answered
