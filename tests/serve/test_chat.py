"""``sagpt chat`` non-interactively: questions on stdin, rich Markdown out, same grounding and gate."""
from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from studyabroadgpt.serve.answer import Answerer
from studyabroadgpt.serve.chat import run_chat
from studyabroadgpt.serve.generation import GenParams, ScriptedGenerator

# Checks what is done to generated text: auto would answer these rule questions from the facts.
pytestmark = pytest.mark.usefixtures("generated_rule_answers")


def test_chat_grounds_and_gates_each_turn(answerer):
    gen = ScriptedGenerator(["For London you must show £1,900 per month for up to 9 months.",
                             "Apply up to 6 months before your course starts."])
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False, color_system=None)
    stdin = io.StringIO("How much money do I need for a UK student visa in London?\n\n"
                        "And when can I apply for the UK Student visa?\n/quit\nnever asked\n")
    answered = run_chat(gen, answerer, GenParams(max_tokens=64), console=console, stdin=stdin)
    text = out.getvalue()
    assert answered == 2
    assert "GBP 1,483 per month [1]" in text and "£1,900" not in text.split("fact check")[0]
    assert "fact check" in text and "“£1,900 per month” corrected to the official GBP 1,483 per month" in text
    assert "Sources" in text and "gov.uk" in text
    # The second turn carries the first (corrected) answer as history.
    second = gen.calls[1]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert "1,483" in second[2]["content"] and "never asked" not in text


def test_chat_reset_and_no_rag():
    gen = ScriptedGenerator("Plain answer.")
    out = io.StringIO()
    stdin = io.StringIO("first\n/reset\nsecond\n")
    answered = run_chat(gen, Answerer(None, None), GenParams(max_tokens=8),
                        console=Console(file=out, width=100), stdin=stdin, rag=False, gate=False)
    assert answered == 2 and "new conversation" in out.getvalue()
    assert gen.calls[1] == [{"role": "user", "content": "second"}]  # history was cleared, no grounding


def test_chat_command_runs_the_tiny_model():
    from studyabroadgpt.cli import app

    result = CliRunner().invoke(app, ["chat", "--model", "tiny-random", "--no-rag", "--max-tokens", "4"],
                                input="Do I need a visa to study in Germany?\n/quit\n")
    assert result.exit_code == 0, result.output
    assert "StudyAbroadGPT" in result.output and "you>" in result.output
