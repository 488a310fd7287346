"""Deterministic, leak-free train/test split.

Conversations whose prompts (or whole texts) are near-duplicates form one group and always land on the same side,
so no near-duplicate pair crosses train and test ("the same question for another university" is the typical
leak in advising data). Groups are assigned per topic, so topics keep their proportions in both splits.
"""
from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from .dedup import conversation_text, prompt_text
from .near_dup import UnionFind, open_pool, pairs_from_sketch, start_sketch
from .io import gc_paused
from .schema import Conversation


@dataclass
class SplitResult:
    train: list[Conversation]
    test: list[Conversation]
    groups: int
    multi_member_groups: int
    cross_pairs: int  # near-duplicate pairs across the two sides (always 0 by construction; re-checked)

    def report(self) -> dict:
        topics = lambda cs: dict(sorted(_count(c.topic or "unknown" for c in cs).items()))  # noqa: E731
        return {"train": len(self.train), "test": len(self.test), "groups": self.groups,
                "multi_member_groups": self.multi_member_groups, "cross_split_near_duplicates": self.cross_pairs,
                "train_topics": topics(self.train), "test_topics": topics(self.test)}


def _count(items):
    out: dict[str, int] = defaultdict(int)
    for x in items:
        out[x] += 1
    return out


def leak_groups(convs: Sequence[Conversation], prompt_threshold: float = 0.6, text_threshold: float = 0.8,
                num_perm: int = 64) -> tuple[UnionFind, list[tuple[int, int, float]]]:
    """Near-duplicate prompts (character 5-grams, exact Jaccards) and whole texts (word 3-grams) → one group each.

    One worker pool for both sketches, and the whole texts' chunks go to the workers before this process finds
    the prompts' pairs, so the two overlap: that pair search (candidates, estimates, exact Jaccards for 89k
    benchmark prompts) runs on one core, and the second core sat idle during it.
    """
    prompts = [prompt_text(c) for c in convs]
    texts = [conversation_text(c) for c in convs]
    pool = open_pool(len(convs))
    with pool or contextlib.nullcontext():
        prompt_sk = start_sketch(prompts, "char", 5, num_perm, keep_sets=True, pool=pool)()
        texts_done = start_sketch(texts, "word", 3, num_perm, pool=pool)
        pairs = pairs_from_sketch(prompt_sk.signatures, prompt_sk.sets, prompt_threshold, num_perm)
        text_sk = texts_done()
    pairs += pairs_from_sketch(text_sk.signatures, None, text_threshold, num_perm)
    uf = UnionFind(len(convs))
    for i, j, _ in pairs:
        uf.union(i, j)
    return uf, pairs


@gc_paused()  # builds per-document texts, pair lists and dicts over the whole input: see io.gc_paused
def split(convs: Sequence[Conversation], test_size: float = 0.15, seed: int = 42, prompt_threshold: float = 0.6,
          text_threshold: float = 0.8, stratify: bool = True) -> SplitResult:
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    uf, pairs = leak_groups(convs, prompt_threshold, text_threshold)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(convs)):
        groups[uf.find(i)].append(i)
    # Stratum of a group = topic of its first member (groups rarely mix topics).
    strata: dict[str, list[list[int]]] = defaultdict(list)
    for members in groups.values():
        topic = (convs[members[0]].topic or "unknown") if stratify else "all"
        strata[topic].append(members)
    rng = random.Random(seed)
    test_idx: set[int] = set()
    for topic in sorted(strata):
        bucket = sorted(strata[topic], key=lambda m: m[0])
        rng.shuffle(bucket)
        total = sum(len(m) for m in bucket)
        target = round(total * test_size)
        taken = 0
        for members in bucket:
            if taken >= target:
                break
            # don't overshoot badly with a big group; a smaller one later may fit
            if taken + len(members) > target + max(1, len(members) // 2) and taken > 0:
                continue
            test_idx.update(members)
            taken += len(members)
    train = [c for i, c in enumerate(convs) if i not in test_idx]
    test = [c for i, c in enumerate(convs) if i in test_idx]
    cross = sum((i in test_idx) != (j in test_idx) for i, j, _ in pairs)
    multi = sum(len(m) > 1 for m in groups.values())
    return SplitResult(train, test, len(groups), multi, cross)
