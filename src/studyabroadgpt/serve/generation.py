"""The seam between the server and whatever produces text.

A generator turns chat messages into a stream of text pieces. The server, the terminal chat and the
benchmark only talk to this protocol, so the local transformers engine (``hf_engine``), llama.cpp
(``llamacpp_engine``), any OpenAI-compatible upstream (``openai_engine``, which the vLLM engine uses too) and a
test's scripted generator are interchangeable (``create_app(generator=...)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol, runtime_checkable


@dataclass(frozen=True)
class GenParams:
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    timeout_s: float | None = None  # the generator stops producing after this many seconds
    # Anti-repetition decoding (defaults measured on the real-style prompt set: serve/settings.py).
    repetition_penalty: float = field(default_factory=lambda: _decoding("repetition_penalty"))
    no_repeat_ngram_size: int = field(default_factory=lambda: _decoding("no_repeat_ngram_size"))
    # "generated": the penalty and the n-gram ban look at the answer's own tokens only; "all": the prompt's too
    # (transformers' default), which bans quoting the grounding facts (serve/settings.py has the measurement).
    penalty_scope: str = field(default_factory=lambda: _decoding("penalty_scope"))


def _decoding(name: str):
    from .settings import DECODING

    return DECODING[name]


@dataclass
class Piece:
    """One streamed piece. The last piece has ``finish_reason`` set and the final token counts."""

    text: str = ""
    finish_reason: str | None = None      # stop | length | timeout | cancelled
    prompt_tokens: int = 0
    completion_tokens: int = 0


class GenerationError(Exception):
    """The backend failed to generate (a crashed batch, an unreachable upstream server)."""


class PromptTooLong(Exception):
    """The prompt plus max_tokens does not fit the model's context window."""


@runtime_checkable
class Generator(Protocol):
    model_name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def stream(self, messages: list[dict[str, str]], params: GenParams) -> AsyncIterator[Piece]: ...


class ScriptedGenerator:
    """Replies with fixed text, streamed in small pieces: for demos, benchmarks of the serving stack itself
    and tests that need a known answer to check grounding and the gate against."""

    def __init__(self, reply: str | list[str], model_name: str = "scripted", piece_chars: int = 8,
                 delay_s: float = 0.0):
        self.replies = [reply] if isinstance(reply, str) else list(reply)
        self.model_name, self.piece_chars, self.delay_s = model_name, piece_chars, delay_s
        self.calls: list[list[dict[str, str]]] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def stream(self, messages: list[dict[str, str]], params: GenParams) -> AsyncIterator[Piece]:
        import asyncio

        self.calls.append([dict(m) for m in messages])
        text = self.replies[(len(self.calls) - 1) % len(self.replies)]
        for i in range(0, len(text), self.piece_chars):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield Piece(text[i:i + self.piece_chars])
        prompt = sum(len(m["content"].split()) for m in messages)
        yield Piece("", "stop", prompt_tokens=prompt, completion_tokens=len(text.split()))
