"""Hugging Face dataset card (README.md with YAML metadata) filled from the statistics."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData


def size_category(n: int) -> str:
    for limit, label in [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")]:
        if n < limit:
            return label
    return "1M<n<10M"


def build_card(stats: dict[str, Any], splits: dict[str, int], name: str = "StudyAbroadGPT advising conversations",
               license: str = "mit", language: str = "en", source_note: str = "", kb_version: str | None = None,
               fingerprint: str | None = None, audit: dict[str, Any] | None = None) -> DatasetCard:
    total = sum(splits.values()) or stats.get("conversations", 0)
    data = DatasetCardData(
        license=license,
        language=[language],
        pretty_name=name,
        task_categories=["text-generation", "question-answering"],
        size_categories=[size_category(total)],
        tags=["education", "study-abroad", "advising", "conversational", "sharegpt"],
        configs=[{"config_name": "default",
                  "data_files": [{"split": s, "path": f"{s}.jsonl"} for s in splits]}],
        dataset_info={"splits": [{"name": s, "num_examples": n} for s, n in splits.items()]},
    )
    words = stats.get("words", {})
    topic_rows = "\n".join(f"| {t} | {n} |" for t, n in list(stats.get("topics", {}).items())[:25])
    split_rows = "\n".join(f"| {s} | {n} |" for s, n in splits.items())
    tokens = stats.get("tokens")
    token_line = (f"- Tokens per conversation (chat template): mean {tokens['mean']}, median {tokens['median']}, "
                  f"p95 {tokens['p95']}; {stats['over_seq_len_share']:.1%} exceed {stats['seq_len']} "
                  "tokens and are truncated or split in training.\n") if tokens else ""
    audit_block = ""
    if audit:
        audit_block = (f"\n## Factual audit\n\nClaim audit against the knowledge base: {audit.get('error_rate', 0):.1%} "
                       f"of answers hold a contradicted or unsupported specific claim (Wilson 95% CI "
                       f"{audit.get('ci_low', 0):.1%}–{audit.get('ci_high', 0):.1%}, n={audit.get('n', 0)}).\n")
    content = f"""---
{data.to_yaml()}
---

# {name}

Multi-turn study-abroad advising conversations in ShareGPT format (`conversations` with `from`/`value`).
{source_note}

## Splits

| split | conversations |
|---|---|
{split_rows}

Splits are deterministic and leak-free: conversations whose questions are near-duplicates (MinHash LSH) always
land in the same split.

## Statistics

- Conversations: {stats.get('conversations', 0)}; turns per conversation: mean {stats.get('turns_per_conversation', {}).get('mean')}
- Words per user turn: mean {words.get('user', {}).get('mean')}, median {words.get('user', {}).get('median')}
- Words per assistant turn: mean {words.get('assistant', {}).get('mean')}, median {words.get('assistant', {}).get('median')}, p95 {words.get('assistant', {}).get('p95')}
{token_line}- Answers with markdown structure: {stats.get('markdown_rate', 0):.1%}
- Distinct-1 / distinct-2 (answers): {stats.get('distinct_1')} / {stats.get('distinct_2')}
- Conversations with knowledge-base provenance: {stats.get('with_provenance', 0)}

| topic | conversations |
|---|---|
{topic_rows}
{audit_block}
## Limitations

Study-abroad rules (visas, funds, work rights, health cover, fees) change often. Answers are only as current as the
sources they cite; check every policy statement against the official page before relying on it. Synthetic answers
can carry factual errors: audit the data (`sagpt audit`) before training on it.

## Provenance

- Dataset fingerprint: `{fingerprint or 'n/a'}`
- Knowledge-base version: `{kb_version or 'n/a'}`
- Built with StudyAbroadGPT (`sagpt data card`).
"""
    return DatasetCard(content)


def write_card(card: DatasetCard, out: str | Path) -> Path:
    from ..utils import atomic_write_text

    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / "README.md"
    return atomic_write_text(out, str(card))
