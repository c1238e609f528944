"""Sentence embeddings from a sentence-transformers encoder (all-MiniLM-L6-v2, all-mpnet-base-v2):
token states mean-pooled over the attention mask and L2-normalised, as those models were trained
to be used (their ``1_Pooling/config.json`` says mean pooling; another pooling is refused rather
than silently computed wrong).

Used by the extractive summarizer (which sentences to pick) and by the reader's sentence prior
(which sentence answers the question, ``models.qa``). Embeddings of recently seen texts are kept,
so asking a second question about an article embeds only the new question.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np

from models.loading import ModelLoadError, load_pretrained


def pooling_mode(folder: str | Path) -> str:
    """The pooling a sentence-transformers folder declares ("mean" when it declares none)."""
    path = Path(folder) / "1_Pooling" / "config.json"
    if not path.is_file():
        return "mean"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    modes = [k[len("pooling_mode_"):].removesuffix("_tokens").removesuffix("_token")
             for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
    return modes[0] if len(modes) == 1 else "+".join(modes) or "none"


class SentenceEncoder:
    """L2-normalised sentence embeddings. Call ``warm_up()`` before ``embed()``."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 32, max_tokens: int = 256,
                 cache_size: int = 4096):
        self.model_name, self.device = model, device
        self.batch_size, self.max_tokens, self.cache_size = batch_size, max_tokens, cache_size
        self.tokenizer = self.model = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def warm_up(self) -> None:
        """Load the encoder (once).

        Raises:
            ModelLoadError: not found, or its folder declares a pooling other than mean.
        """
        if self.model is not None:
            return
        if Path(self.model_name).is_dir() and (mode := pooling_mode(self.model_name)) != "mean":
            raise ModelLoadError(f"Sentence encoder {self.model_name!r} declares {mode} pooling; "
                                 f"only mean pooling is supported.")
        from models.attention import fuse_attention
        self.tokenizer, self.model = load_pretrained(self.model_name, "encoder", self.device)
        fuse_attention(self.model)

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text (float32, unit length), each text cut to ``max_tokens`` tokens. Texts
        are embedded in length-sorted batches; those seen recently come from the cache."""
        if self.model is None:
            raise RuntimeError("SentenceEncoder.embed() called before warm_up().")
        # first-seen order, then by length (a stable sort): the same texts always form the same
        # batches, so the same embeddings come out on every run
        new = sorted(dict.fromkeys(t for t in texts if t not in self._cache), key=len)
        for b in range(0, len(new), self.batch_size):
            batch = new[b:b + self.batch_size]
            for t, v in zip(batch, self._embed_batch(batch)):
                self._cache[t] = v
        out = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)
        for t in texts:
            self._cache.move_to_end(t)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        import torch
        with torch.inference_mode():
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                                 return_tensors="pt").to(self.device)
            hidden = self.model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            v = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
            return torch.nn.functional.normalize(v.float(), dim=-1).cpu().numpy()
