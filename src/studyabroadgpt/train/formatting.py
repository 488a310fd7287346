"""Conversation → (input_ids, labels) with assistant-only loss built from explicit turn spans.

Why not marker matching: SmolLM2's ChatML template has no ``{% generation %}`` markers, and searching the token
stream for "<|im_start|>assistant" breaks as soon as a user quotes the marker or a tokenizer merges across it.
Instead we render the conversation prefix turn by turn with the chat template itself: the text up to
"assistant turn k starts" is ``render(turns[:k], add_generation_prompt=True)`` and the text up to "turn k ends"
is ``render(turns[:k+1])``. Both must be string prefixes of the full render (checked), and the tokenizer's
offset mapping turns those character boundaries into token boundaries.

Inside a span we train the assistant's content and its end-of-turn token (``<|im_end|>`` / ``</s>``) and drop
the whitespace the template appends after it. The mask never looks at ``pad_token_id``: SmolLM2's pad id *is*
its EOS id, so "labels = ids where ids != pad" would silently stop the model from learning to stop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.io import DataError
from ..data.schema import Conversation

IGNORE = -100


@dataclass
class Example:
    conv_id: str
    input_ids: list[int]
    labels: list[int]  # same length; IGNORE where not trained
    truncated: bool = False
    system_folded: bool = False
    spans: list[tuple[int, int]] = field(default_factory=list)  # trained token ranges [start, end)

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)

    def __len__(self) -> int:
        return len(self.input_ids)


def _render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Merge a leading system turn into the first user turn (for templates that reject the system role)."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return rest


def _messages_for_template(tokenizer: Any, conv: Conversation) -> tuple[list[dict[str, str]], bool]:
    messages = conv.messages()
    try:
        _render(tokenizer, messages)
        return messages, False
    except Exception as exc:  # jinja raises TemplateError via raise_exception(); keep the reason if folding fails
        if not any(m["role"] == "system" for m in messages):
            raise DataError(f"conversation {conv.id!r}: the chat template rejects it: {exc}") from exc
        folded = fold_system(messages)
        try:
            _render(tokenizer, folded)
        except Exception as exc2:
            raise DataError(f"conversation {conv.id!r}: the chat template rejects it: {exc2}") from exc2
        return folded, True


def assistant_char_spans(tokenizer: Any, messages: list[dict[str, str]], conv_id: str) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the [start, end) character span of every assistant turn."""
    full = _render(tokenizer, messages)
    spans = []
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:k], add_generation_prompt=True) if k else ""
        through = _render(tokenizer, messages[: k + 1])
        if not full.startswith(before) or not full.startswith(through) or len(through) <= len(before):
            raise DataError(f"conversation {conv_id!r}: the chat template does not render turn {k} as a prefix of "
                            "the whole conversation, so turn spans cannot be located")
        spans.append((len(before), len(through)))
    return full, spans


def _trim_trailing_whitespace(tokenizer: Any, ids: list[int], start: int, end: int) -> int:
    """Move ``end`` back over plain-whitespace tokens the template adds after the end-of-turn token."""
    special = set(tokenizer.all_special_ids)
    while end > start and ids[end - 1] not in special and tokenizer.decode([ids[end - 1]]).strip() == "":
        end -= 1
    return end


def encode_conversation(tokenizer: Any, conv: Conversation, seq_len: int) -> Example:
    if not any(t.role == "assistant" for t in conv.turns):
        raise DataError(f"conversation {conv.id!r}: has no assistant turn, nothing to train on")
    messages, folded = _messages_for_template(tokenizer, conv)
    text, char_spans = assistant_char_spans(tokenizer, messages, conv.id)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = enc["input_ids"]
    offsets: list[tuple[int, int]] = enc["offset_mapping"]

    def token_at(char_pos: int) -> int:
        # first token that starts at or after the character boundary
        for i, (s, _e) in enumerate(offsets):
            if s >= char_pos:
                return i
        return len(ids)

    labels = [IGNORE] * len(ids)
    spans = []
    for cs, ce in char_spans:
        ts, te = token_at(cs), token_at(ce)
        te = _trim_trailing_whitespace(tokenizer, ids, ts, te)
        labels[ts:te] = ids[ts:te]
        spans.append((ts, te))
    truncated = len(ids) > seq_len
    if truncated:
        ids, labels = ids[:seq_len], labels[:seq_len]
        spans = [(s, min(e, seq_len)) for s, e in spans if s < seq_len]
    return Example(conv.id, ids, labels, truncated, folded, spans)


def encode_all(tokenizer: Any, convs: list[Conversation], seq_len: int) -> tuple[list[Example], dict[str, int]]:
    """Encode every conversation; drop those left with no trained token after truncation (and count them)."""
    examples, stats = [], {"conversations": len(convs), "truncated": 0, "dropped_no_trained_tokens": 0,
                           "system_folded": 0}
    for conv in convs:
        ex = encode_conversation(tokenizer, conv, seq_len)
        stats["truncated"] += ex.truncated
        stats["system_folded"] += ex.system_folded
        if ex.n_trained == 0:
            stats["dropped_no_trained_tokens"] += 1
            continue
        examples.append(ex)
    if not examples:
        raise DataError(f"no conversation keeps an assistant token within seq_len={seq_len}; raise seq_len")
    return examples, stats


def render_labels(tokenizer: Any, ex: Example, max_tokens: int = 400) -> Any:
    """A rich Text with trained tokens highlighted and masked ones dimmed (for ``train --show-labels``)."""
    from rich.text import Text

    out = Text()
    for tok, lab in list(zip(ex.input_ids, ex.labels))[:max_tokens]:
        piece = tokenizer.decode([tok])
        out.append(piece, style="bold black on green" if lab != IGNORE else "dim")
    if len(ex) > max_tokens:
        out.append(f"\n… {len(ex) - max_tokens} more tokens", style="italic")
    return out
