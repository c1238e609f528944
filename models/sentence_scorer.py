"""A trained sentence scorer for extractive summaries: per-sentence features -> a small network
-> the log-odds that the sentence belongs in the summary.

Two kinds of network, named in ``scorer.json``: an MLP that reads each sentence alone, or (with
``context_layers``) a small transformer over the article's sentences, as BertSumExt puts one over
sentence vectors, so a sentence is scored knowing what the others say and where they stand.

The features (``sentence_features``) are what news writing makes predictive: where a sentence
stands (index, relative position, paragraph start), its length, how close it is to the headline,
the lead and the article centroid, and the sentence's own embedding (the summarizer's sentence
encoder). The scorer folder holds ``scorer.safetensors`` (the MLP's weights, float32),
``scorer.json`` (feature names, their normalisation, the network's shape, the encoder it was
trained with, the selection settings chosen on the development split) and a card (README.md); it
is trained by ``python -m training.train_summarizer``. Inference is numpy only.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.loading import ModelLoadError
from models.text import Sentence

# the hand-made features, in this order, before the embedding dimensions
FEATURE_NAMES = ("rel_pos", "inv_pos", "pos_0", "pos_1", "pos_2", "pos_3", "pos_4_plus", "log_sentences",
                 "words", "log_words", "paragraph_start", "cos_centroid", "centrality_rank", "cos_lead",
                 "cos_headline", "max_cos_other", "has_quote", "has_digit",
                 "cos_prev", "cos_next")
_QUOTE = re.compile("[\"“”]|``|''")
_DIGIT = re.compile(r"\d")


def headline_of(article: str, first: Sentence | None) -> str | None:
    """The article's headline: a first non-empty line that does not end like a sentence and
    comes before the first candidate sentence (BBC and many web pages put it there)."""
    stripped = article.lstrip()
    line = stripped.split("\n", 1)[0].strip()
    if not line or line[-1] in ".!?\"'”’" or len(line.split()) > 25:
        return None
    offset = len(article) - len(stripped)
    if first is not None and offset + len(line) > first.start:
        return None
    return line


def sentence_features(article: str, sentences: list[Sentence], emb: np.ndarray,
                      headline_emb: np.ndarray | None) -> np.ndarray:
    """Features of each candidate sentence (rows), hand-made ones then the embedding.
    ``emb`` holds the sentences' L2-normalised embeddings; ``headline_emb`` the headline's, if any
    (else the lead sentence stands in)."""
    n = len(sentences)
    texts = [s.text(article) for s in sentences]
    idx = np.arange(n, dtype=np.float32)
    words = np.array([len(t.split()) for t in texts], dtype=np.float32)
    centroid = emb.mean(axis=0)
    centroid = centroid / (np.linalg.norm(centroid) + 1e-12)
    cos_centroid = emb @ centroid
    rank = np.empty(n, dtype=np.float32)
    rank[np.argsort(-cos_centroid, kind="stable")] = np.arange(n)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -1.0)
    head = headline_emb if headline_emb is not None else emb[0]
    para_start = np.array([s.start == 0 or article[max(0, s.start - 1)] == "\n" for s in sentences], dtype=np.float32)
    prev = np.array([sims[i, i - 1] if i > 0 else 0.0 for i in range(n)], dtype=np.float32)
    nxt = np.array([sims[i, i + 1] if i + 1 < n else 0.0 for i in range(n)], dtype=np.float32)
    hand = np.stack([
        idx / max(1, n), 1.0 / (1.0 + idx),
        (idx == 0), (idx == 1), (idx == 2), (idx == 3), (idx >= 4),
        np.full(n, math.log(n)), words / 30.0, np.log1p(words), para_start,
        cos_centroid, rank / max(1, n), emb @ emb[0], emb @ head,
        sims.max(axis=1) if n > 1 else np.zeros(n),
        np.array([bool(_QUOTE.search(t)) for t in texts]), np.array([bool(_DIGIT.search(t)) for t in texts]),
        prev, nxt,
    ], axis=1).astype(np.float32)
    return np.concatenate([hand, emb.astype(np.float32)], axis=1)


@dataclass
class ScorerConfig:
    """What travels with the weights: how to build the input and how to select."""
    feature_names: list[str]
    embedding_dim: int
    mean: list[float]
    std: list[float]
    hidden: list[int]            # MLP: hidden widths; context: [the transformer's width]
    encoder: str                 # the sentence encoder the features were computed with
    use_embedding: bool = True   # the MLP reads the sentence embedding too (else only the named features)
    redundancy: float = 0.7      # selection: a sentence this similar to a chosen one is skipped
    trigram_blocking: bool = True
    keep_lead: bool = False      # selection: the first sentence is always taken (news leads with the news)
    context_layers: int = 0      # transformer blocks over the article's sentences (0: an MLP per sentence)
    heads: int = 4               # attention heads of each block


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * weight + bias


def linear(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def mlp_logits(x: np.ndarray, w: dict[str, np.ndarray], depth: int) -> np.ndarray:
    """Each sentence alone: ``depth`` hidden ReLU layers, then one output."""
    for i in range(depth + 1):
        x = linear(x, w, f"layer{i}")
        if i < depth:
            x = np.maximum(x, 0.0)
    return x[:, 0]


def context_logits(x: np.ndarray, w: dict[str, np.ndarray], layers: int, heads: int) -> np.ndarray:
    """The article's sentences together: a ReLU projection, ``layers`` pre-norm transformer blocks
    (self-attention over all sentences, then a ReLU feed-forward), a final norm and one output.
    The same arithmetic as ``training.train_summarizer.ContextScorer``."""
    h = np.maximum(linear(x, w, "input"), 0.0)
    n, width = h.shape
    dh = width // heads
    for b in range(layers):
        a = layer_norm(h, w[f"blocks.{b}.norm1.weight"], w[f"blocks.{b}.norm1.bias"])
        q, k, v = (linear(a, w, f"blocks.{b}.{m}").reshape(n, heads, dh).transpose(1, 0, 2) for m in "qkv")
        att = q @ k.transpose(0, 2, 1) / np.sqrt(dh)
        att = np.exp(att - att.max(axis=-1, keepdims=True))
        att /= att.sum(axis=-1, keepdims=True)
        h = h + linear((att @ v).transpose(1, 0, 2).reshape(n, width), w, f"blocks.{b}.o")
        a = layer_norm(h, w[f"blocks.{b}.norm2.weight"], w[f"blocks.{b}.norm2.bias"])
        h = h + linear(np.maximum(linear(a, w, f"blocks.{b}.ff1"), 0.0), w, f"blocks.{b}.ff2")
    h = layer_norm(h, w["norm.weight"], w["norm.bias"])
    return linear(h, w, "output")[:, 0]


class SentenceScorer:
    """The trained network: ``scores(features)`` (one article's sentences) -> log-odds per sentence."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        cfg_path, weights_path = folder / "scorer.json", folder / "scorer.safetensors"
        if not cfg_path.exists() or not weights_path.exists():
            raise ModelLoadError(f"No trained sentence scorer in {folder} (scorer.json and scorer.safetensors); "
                                 "train one with python -m training.train_summarizer")
        from safetensors.numpy import load_file
        self.folder = folder
        self.config = ScorerConfig(**json.loads(cfg_path.read_text(encoding="utf-8")))
        self.weights = load_file(str(weights_path))
        if tuple(self.config.feature_names) != FEATURE_NAMES:
            raise ModelLoadError(f"The scorer in {folder} was trained with other features; retrain it")
        self.mean = np.asarray(self.config.mean, dtype=np.float32)
        self.std = np.asarray(self.config.std, dtype=np.float32)
        try:   # two sentences of zeros: weights that do not fit scorer.json fail here, not mid-request
            self.scores(np.zeros((2, len(self.mean)), dtype=np.float32))
        except (KeyError, ValueError) as exc:
            raise ModelLoadError(f"The scorer weights in {folder} do not match its scorer.json ({exc}); "
                                 "retrain it with python -m training.train_summarizer") from exc

    def scores(self, features: np.ndarray) -> np.ndarray:
        if not self.config.use_embedding:
            features = features[:, :len(FEATURE_NAMES)]
        x = ((features - self.mean) / self.std).astype(np.float32)
        if self.config.context_layers:
            return context_logits(x, self.weights, self.config.context_layers, self.config.heads)
        return mlp_logits(x, self.weights, len(self.config.hidden))
