"""Near-duplicate detection with MinHash LSH (datasketch), shared by `data dedup` and `data split`."""
from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np
from datasketch import MinHash, MinHashLSH

_WORD = re.compile(r"\w+", re.UNICODE)


_P = np.uint64(1_000_003)
_MASK = np.uint64(0xFFFFFFFF)


def _identity(x: int) -> int:
    return x


def normalised(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


# Tabulation hashing table (byte position in word mod 32 × byte value), fixed seed: deterministic across runs.
_TAB = np.random.default_rng(20250421).integers(0, 2**63, size=(32, 256), dtype=np.uint64)


def _word_hashes(norm: str) -> np.ndarray:
    """One hash per word of a single-space-separated string, fully vectorised (no per-word Python call)."""
    b = np.frombuffer(norm.encode("utf-8"), dtype=np.uint8)
    if b.size == 0:
        return np.zeros(0, dtype=np.uint64)
    is_space = b == 32
    starts = np.flatnonzero(np.concatenate(([True], is_space[:-1])))
    idx = np.arange(b.size)
    pos = idx - starts[np.searchsorted(starts, idx, side="right") - 1]
    contrib = np.where(is_space, np.uint64(0), _TAB[pos % 32, b])
    return np.add.reduceat(contrib, starts) & _MASK


def shingle_hashes(text: str, kind: str = "word", n: int = 3) -> np.ndarray:
    """Distinct 32-bit hashes of the text's shingles, computed with numpy (no per-shingle Python call).

    ``word``: word n-grams, for long texts. ``char``: character n-grams, for short prompts, where one changed word
    (another university's name) should move the similarity only a little. Hashes are deterministic across runs.
    """
    norm = normalised(text)
    if kind == "char":
        units = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    else:
        units = _word_hashes(norm)
    if units.size == 0:
        return np.zeros(1, dtype=np.uint64)
    if units.size <= n:
        windows = units[None, :]
    else:
        windows = np.lib.stride_tricks.sliding_window_view(units, n)
    h = np.zeros(windows.shape[0], dtype=np.uint64)
    for k in range(windows.shape[1]):  # polynomial hash of each window, all windows at once
        h = (h * _P + windows[:, k]) & _MASK
    return np.unique(h)


def shingles(text: str, kind: str = "word", n: int = 3) -> set[int]:
    return set(shingle_hashes(text, kind, n).tolist())


def minhashes(texts: Sequence[str], kind: str = "word", n: int = 3, num_perm: int = 64, seed: int = 1,
              hashed: Sequence[np.ndarray] | None = None) -> list[MinHash]:
    out = []
    # Permutations depend only on (num_perm, seed): build them once instead of once per document.
    proto = MinHash(num_perm=num_perm, seed=seed)
    perms, scheme = proto.permutations, proto.scheme
    for idx, text in enumerate(texts):
        hv = hashed[idx] if hashed is not None else shingle_hashes(text, kind, n)
        # shingles are already 32-bit hashes, so MinHash's own hash function is the identity
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=_identity, permutations=perms, scheme=scheme)
        m.update_batch(hv.tolist())
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
    hashed = [shingle_hashes(t, kind, n) for t in texts]
    sets = [set(h.tolist()) for h in hashed] if exact else None
    sigs = minhashes(texts, kind, n, num_perm, hashed=hashed)
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


