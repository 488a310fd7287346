"""Dataset statistics: the numbers a person needs before training (and the dataset card is filled from)."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..utils import save_figure
from .schema import Conversation

# One definition of "formatted answer" for the whole project (dataset stats and eval's markdown rate).
_MD = re.compile(
    r"(^\s{0,3}#{1,6}\s+\S)"          # headings
    r"|(^\s*[-*+]\s+\S)"              # bullet lists
    r"|(^\s*\d+[.)]\s+\S)"            # numbered lists
    r"|(\*\*[^*\n]+\*\*)|(__[^_\n]+__)"  # bold
    r"|(^\s*```)"                      # code fences
    r"|(^\s*\|.+\|\s*$)",             # table rows
    re.MULTILINE,
)
_WORDS = re.compile(r"\w+", re.UNICODE)

# The training recipe's default sequence length (train.config.TrainConfig.seq_len; a test keeps them equal).
# Written here rather than imported so the data stage does not depend on the training stage.
DEFAULT_SEQ_LEN = 1024


def has_markdown(text: str) -> bool:
    """Headings, bullets, numbered steps, bold, code or tables: the structure advising answers use."""
    return bool(_MD.search(text))


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not len(values):
        return {"mean": 0.0, "median": 0.0, "p95": 0.0, "min": 0.0, "max": 0.0}
    arr = np.asarray(values, dtype=float)
    return {"mean": round(float(arr.mean()), 2), "median": float(np.median(arr)),
            "p95": round(float(np.percentile(arr, 95)), 2), "min": float(arr.min()), "max": float(arr.max())}


def distinct_n(texts: Sequence[str], n: int) -> float:
    grams: Counter = Counter()
    total = 0
    for text in texts:
        words = _WORDS.findall(text.lower())
        for i in range(len(words) - n + 1):
            grams[tuple(words[i:i + n])] += 1
            total += 1
    return round(len(grams) / total, 4) if total else 0.0


def compute_stats(convs: Sequence[Conversation], tokenizer: Any = None, seq_len: int = DEFAULT_SEQ_LEN
                  ) -> dict[str, Any]:
    """The dataset's numbers; with a tokenizer, token lengths and the share longer than ``seq_len`` (the
    training recipe's sequence length, same name and default as ``train.config.TrainConfig.seq_len``)."""
    turns = [len(c.turns) for c in convs]
    words: dict[str, list[int]] = {"user": [], "assistant": [], "system": []}
    for c in convs:
        for t in c.turns:
            words[t.role].append(len(_WORDS.findall(t.text)))
    answers = [t.text for c in convs for t in c.turns if t.role == "assistant"]
    out: dict[str, Any] = {
        "conversations": len(convs),
        "turns": sum(turns),
        "turns_per_conversation": _summary(turns),
        "turn_count_distribution": dict(sorted(Counter(turns).items())),
        "words": {role: _summary(v) for role, v in words.items() if v},
        "markdown_rate": round(sum(map(has_markdown, answers)) / len(answers), 4) if answers else 0.0,
        "topics": dict(Counter(c.topic or "unknown" for c in convs).most_common()),
        "sources": dict(Counter(c.source or "unknown" for c in convs).most_common()),
        "distinct_1": distinct_n(answers, 1),
        "distinct_2": distinct_n(answers, 2),
        "with_provenance": sum(any(t.provenance for t in c.turns) for c in convs),
    }
    if tokenizer is not None:
        lengths = [token_length(tokenizer, c) for c in convs]
        out["tokens"] = _summary(lengths)
        out["seq_len"] = seq_len
        over = sum(n > seq_len for n in lengths)
        out["over_seq_len"] = over
        out["over_seq_len_share"] = round(over / len(lengths), 4) if lengths else 0.0
        out["_token_lengths"] = lengths
    out["_turn_words"] = words
    return out


def token_length(tokenizer: Any, conv: Conversation) -> int:
    ids = tokenizer.apply_chat_template(conv.messages(), tokenize=True)
    # transformers ≥5 returns a BatchEncoding here; older versions a plain list of ids
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def plot_stats(stats: dict[str, Any], out_dir: Path) -> list[Path]:
    """Histograms of words per role and tokens per conversation (with the max-length line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    words = stats.get("_turn_words", {})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, role in zip(axes, ["user", "assistant"]):
        ax.hist(words.get(role) or [0], bins=30, color="#4C72B0" if role == "user" else "#DD8452")
        ax.set_title(f"words per {role} turn")
        ax.set_xlabel("words")
        ax.set_ylabel("turns")
    fig.tight_layout()
    paths.append(save_figure(fig, out_dir / "words_per_turn.png"))
    if "_token_lengths" in stats:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.hist(stats["_token_lengths"], bins=30, color="#55A868")
        ax.axvline(stats["seq_len"], color="red", linestyle="--",
                   label=f"seq_len={stats['seq_len']} ({stats['over_seq_len_share']:.0%} over)")
        ax.set_title("tokens per conversation (chat template)")
        ax.set_xlabel("tokens")
        ax.legend()
        fig.tight_layout()
        paths.append(save_figure(fig, out_dir / "tokens_per_conversation.png"))
    return paths


def public(stats: dict[str, Any]) -> dict[str, Any]:
    """Stats without the raw per-item lists used for plotting."""
    return {k: v for k, v in stats.items() if not k.startswith("_")}
