"""Near-duplicate detection with MinHash LSH (datasketch), shared by `data dedup` and `data split`."""
from __future__ import annotations

import hashlib
import re
import zlib
from typing import Sequence

import numpy as np
from datasketch import MinHash, MinHashLSH

_WORD = re.compile(r"\w+", re.UNICODE)


def _crc32(data: bytes) -> int:
    # datasketch's default is SHA-1 per shingle; crc32 is C-fast and its 32 bits are all MinHash needs.
    return zlib.crc32(data)


def normalised(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def shingles(text: str, kind: str = "word", n: int = 3) -> set[bytes]:
    """Word n-grams for long texts; character n-grams for short prompts (where one changed word matters less)."""
    norm = normalised(text)
    if kind == "char":
        if len(norm) <= n:
            return {norm.encode()}
        return {norm[i:i + n].encode() for i in range(len(norm) - n + 1)}
    words = norm.split()
    if len(words) <= n:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)}


def minhashes(texts: Sequence[str], kind: str = "word", n: int = 3, num_perm: int = 64, seed: int = 1
              ) -> list[MinHash]:
    out = []
    # Permutations depend only on (num_perm, seed): build them once instead of once per document.
    proto = MinHash(num_perm=num_perm, seed=seed)
    perms, scheme = proto.permutations, proto.scheme
    for text in texts:
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=_crc32, permutations=perms, scheme=scheme)
        m.update_batch(list(shingles(text, kind, n)))
        out.append(m)
    return out


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            # keep the smaller index as root so "first occurrence wins" is stable
            self.parent[max(ri, rj)] = min(ri, rj)


def near_duplicate_pairs(texts: Sequence[str], threshold: float, kind: str = "word", n: int = 3,
                         num_perm: int = 64, exact: bool = False) -> list[tuple[int, int, float]]:
    """Pairs (i, j, Jaccard) with Jaccard ≥ threshold, found via LSH.

    With ``exact`` the LSH runs a little below the threshold to collect candidates and each close candidate's
    true Jaccard is computed on the shingle sets, so the result does not depend on MinHash estimation noise (used for short
    prompts, where sets are small; long texts use the signature estimate to keep memory flat).
    """
    sets = [shingles(t, kind, n) for t in texts] if exact else None
    sigs = minhashes(texts, kind, n, num_perm)
    values = np.stack([m.hashvalues for m in sigs]) if sigs else np.zeros((0, num_perm))
    # In exact mode LSH runs slightly below the threshold so pairs whose estimate dips under it are still seen.
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.05) if exact else threshold, num_perm=num_perm)
    seen_sig: dict[bytes, int] = {}
    pairs: list[tuple[int, int, float]] = []
    for i, m in enumerate(sigs):
        digest = hashlib.blake2b(np.asarray(m.hashvalues).tobytes(), digest_size=16).digest()
        if digest in seen_sig:  # identical signature: identical shingle set (almost surely); skip LSH work
            pairs.append((seen_sig[digest], i, 1.0))
            continue
        seen_sig[digest] = i
        cands = lsh.query(m)
        if not cands:
            lsh.insert(i, m)
            continue
        # estimated Jaccard of all candidates at once: share of equal signature slots
        est = (values[cands] == values[i]).mean(axis=1)
        for j, jac in zip(cands, est.tolist()):
            if sets is not None and jac >= threshold - 0.15:  # exact only when the estimate is close
                jac = _jaccard(sets[i], sets[j])
            if jac >= threshold:
                pairs.append((j, i, jac))
        lsh.insert(i, m)
    return pairs


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def clusters_from_pairs(n: int, pairs: Sequence[tuple[int, int, float]]) -> UnionFind:
    uf = UnionFind(n)
    for i, j, _ in pairs:
        uf.union(i, j)
    return uf


def exact_key(text: str) -> bytes:
    return hashlib.blake2b(normalised(text).encode(), digest_size=16).digest()


