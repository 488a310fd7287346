"""Exact and near-duplicate removal: one conversation kept per cluster, every removal reported."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .near_dup import clusters_from_pairs, pairs_from_sketch, sketch
from .io import gc_paused
from .schema import Conversation


def conversation_text(conv: Conversation) -> str:
    return "\n".join(t.text for t in conv.turns if t.role != "system")


def prompt_text(conv: Conversation) -> str:
    return "\n".join(t.text for t in conv.turns if t.role == "user")


@dataclass
class DedupResult:
    kept: list[Conversation]
    removed: list[dict] = field(default_factory=list)  # {"id", "kept_id", "reason", "jaccard"}
    clusters: list[dict] = field(default_factory=list)  # {"kept": id, "removed": [ids], "reason"}

    @property
    def exact_removed(self) -> int:
        return sum(r["reason"] == "exact" for r in self.removed)

    @property
    def near_removed(self) -> int:
        return sum(r["reason"] == "near" for r in self.removed)


@gc_paused()  # builds per-document texts, pair lists and dicts over the whole input: see io.gc_paused
def dedup(convs: Sequence[Conversation], threshold: float = 0.8, num_perm: int = 64) -> DedupResult:
    """Drop exact duplicates (normalised text), then near-duplicates (MinHash Jaccard ≥ threshold).

    The first occurrence of each cluster is kept, so the result is stable for a given input order.
    """
    texts = [conversation_text(c) for c in convs]
    # one pass gives the exact keys and the signatures of every text; the near-duplicate search then runs on the
    # survivors' rows (a text's signature does not depend on the other texts, so this equals sketching them anew)
    sk = sketch(texts, "word", 3, num_perm, exact_keys=True)
    seen: dict[bytes, int] = {}
    removed: list[dict] = []
    survivors: list[int] = []
    for i, key in enumerate(sk.keys):
        if key in seen:
            removed.append({"id": convs[i].id, "kept_id": convs[seen[key]].id, "reason": "exact", "jaccard": 1.0})
        else:
            seen[key] = i
            survivors.append(i)
    pairs = pairs_from_sketch(sk.signatures[survivors], None, threshold, num_perm)
    best_jac = {}
    for a, b, jac in pairs:
        best_jac[b] = max(best_jac.get(b, 0.0), jac)
    uf = clusters_from_pairs(len(survivors), pairs)
    kept: list[Conversation] = []
    for local, i in enumerate(survivors):
        root = uf.find(local)
        if root == local:
            kept.append(convs[i])
        else:
            removed.append({"id": convs[i].id, "kept_id": convs[survivors[root]].id, "reason": "near",
                            "jaccard": round(best_jac.get(local, threshold), 3)})
    groups: dict[str, dict] = {}
    for r in removed:
        g = groups.setdefault(r["kept_id"], {"kept": r["kept_id"], "removed": [], "reasons": set()})
        g["removed"].append(r["id"])
        g["reasons"].add(r["reason"])
    clusters = [{**g, "reasons": sorted(g["reasons"])} for g in groups.values()]
    return DedupResult(kept, removed, clusters)
