"""Summarizers: extractive (sentences scored by a trained scorer, ``models/sentence_scorer.py``,
or else by centrality + lead; chosen within the budget without repeats) and abstractive (seq2seq
``generate`` with map-reduce over sentence-aligned chunks).

Inputs: an article (str) and an optional word budget. Output: a dict with ``summary`` (str),
``method`` ("extractive" or "abstractive") and, for extractive, ``sentences``
([{"text", "start", "end"}] in article order, offsets into the article).
"""
from __future__ import annotations

import re

import numpy as np

from models.loading import ModelLoadError, load_pretrained
from models.profiles import SummarizerSettings
from models.sentence_encoder import SentenceEncoder
from models.sentence_scorer import SentenceScorer, headline_of, sentence_features
from models.text import Sentence, body_end, body_sentences, split_sentences

_ENDS_LIKE_SENTENCE = re.compile(r"[.!?][\"'”’)\]]*$")


def candidate_sentences(article: str) -> list[Sentence]:
    """Sentences a summary may use: body sentences (no page junk) that end like sentences and have
    at least four words; headlines and link titles are left out. Falls back to any sentence."""
    body = body_sentences(article)
    good = [s for s in body if len(s.text(article).split()) >= 4 and _ENDS_LIKE_SENTENCE.search(s.text(article))]
    return good or body or split_sentences(article)


def rank_sentences(emb: np.ndarray, position_weight: float) -> np.ndarray:
    """Score sentences by centrality (cosine to the article centroid, scaled to [0, 1]) mixed with
    a lead prior 1/sqrt(1 + index). ``emb`` rows are L2-normalised sentence embeddings."""
    centroid = emb.mean(axis=0)
    centroid /= np.linalg.norm(centroid) + 1e-12
    cent = emb @ centroid
    span = cent.max() - cent.min()
    cent = (cent - cent.min()) / span if span > 1e-9 else np.ones_like(cent)
    lead = 1.0 / np.sqrt(1.0 + np.arange(len(emb)))
    return (1 - position_weight) * cent + position_weight * lead


def select_sentences(scores: np.ndarray, emb: np.ndarray, words: list[int], max_words: int,
                     max_sentences: int, redundancy: float) -> list[int]:
    """Greedy pick by score, skipping a sentence too similar (cosine >= ``redundancy``) to one
    already picked, within the word and sentence budgets; at least one sentence. Returns indices in
    article order."""
    chosen: list[int] = []
    total = 0
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) >= max_sentences:
            break
        if chosen and (emb[chosen] @ emb[i]).max() >= redundancy:
            continue
        if chosen and total + words[i] > max_words:
            continue
        chosen.append(int(i))
        total += words[i]
    return sorted(chosen)


def trigrams(text: str) -> set[tuple[str, str, str]]:
    words = re.findall(r"\w+", text.lower())
    return set(zip(words, words[1:], words[2:]))


def select_within_budget(scores: np.ndarray, emb: np.ndarray, texts: list[str], max_words: int,
                         redundancy: float, trigram_blocking: bool = True, keep_first: bool = False,
                         slack: float = 0.1) -> list[int]:
    """Best-scoring sentences whose words add up to the budget within ``slack`` (+-10%): take
    sentences by score (the first sentence before all others with ``keep_first``), skip one that
    would pass ``max_words * (1 + slack)`` or repeats a chosen one (cosine >= ``redundancy``, or a
    shared word trigram), stop once ``max_words * (1 - slack)`` is reached. Returns indices in
    article order. A budget no whole sentence fits gives the best sentence alone
    (``fit_to_budget`` then shortens it)."""
    words = [len(t.split()) for t in texts]
    low, high = max_words * (1 - slack), max_words * (1 + slack)
    chosen: list[int] = []
    seen: set = set()
    total = 0
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    if keep_first and order:
        order.remove(0)
        order.insert(0, 0)
    for i in order:
        if total >= low:
            break
        if total + words[i] > high:
            continue
        if chosen and (emb[chosen] @ emb[i]).max() >= redundancy:
            continue
        grams = trigrams(texts[i]) if trigram_blocking else set()
        if grams & seen:
            continue
        chosen.append(i)
        seen |= grams
        total += words[i]
    if not chosen and order:
        chosen = [order[0]]
    return sorted(chosen)


def fit_to_budget(article: str, start: int, end: int, max_words: int) -> tuple[int, int]:
    """The first ``max_words`` words of ``article[start:end]`` (a span of the article, cut at a
    word end), for a lone sentence longer than the whole budget."""
    pieces = list(re.finditer(r"\S+", article[start:end]))
    if len(pieces) <= max_words:
        return start, end
    return start, start + pieces[max_words - 1].end()


class _Summarizer:
    """A summarizer's settings and the weights it names; each kind loads them in ``warm_up()``."""

    def __init__(self, settings: SummarizerSettings, model: str, device: str = "cpu"):
        self.settings, self.model_name, self.device = settings, model, device


class ExtractiveSummarizer(_Summarizer):
    """Picks article sentences with a sentence encoder (``models.sentence_encoder``) and, when
    the profile names one, a trained sentence scorer."""

    scorer: SentenceScorer | None = None

    def __init__(self, settings: SummarizerSettings, model: str, device: str = "cpu",
                 encoder: SentenceEncoder | None = None):
        """``encoder``: one already made for ``model`` (the engine shares one with the reader's
        sentence prior when both name the same weights); by default a new one."""
        super().__init__(settings, model, device)
        self.encoder = encoder or SentenceEncoder(model, device, batch_size=settings.batch_size)

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised mean-pooled embeddings (each sentence up to 256 tokens)."""
        if self.encoder.model is None:
            raise RuntimeError("ExtractiveSummarizer used before warm_up().")
        return self.encoder.embed(texts)

    def warm_up(self) -> None:
        """The encoder, and the trained sentence scorer when the profile names one."""
        self.encoder.warm_up()
        if self.settings.scorer and self.scorer is None:
            self.scorer = SentenceScorer(self.settings.scorer)

    def sentence_features(self, article: str, sentences: list[Sentence]) -> tuple[np.ndarray, np.ndarray]:
        """The scorer's input for these sentences (``models.sentence_scorer.sentence_features``,
        the headline embedded in the same pass) and the sentences' embeddings."""
        head = headline_of(article, sentences[0] if sentences else None)
        emb = self.embed([x.text(article) for x in sentences] + ([head] if head else []))
        head_emb, emb = (emb[-1], emb[:-1]) if head else (None, emb)
        return sentence_features(article, sentences, emb, head_emb), emb

    def run(self, article: str, max_words: int | None = None) -> dict:
        s = self.settings
        budget = max_words or s.max_words
        sents = candidate_sentences(article)
        texts = [x.text(article) for x in sents]
        if self.scorer is not None:
            features, emb = self.sentence_features(article, sents)
            cfg = self.scorer.config
            picked = select_within_budget(self.scorer.scores(features), emb, texts, budget, cfg.redundancy,
                                          cfg.trigram_blocking, cfg.keep_lead)
            method = "extractive-trained"
        else:
            emb = self.embed(texts)
            scores = rank_sentences(emb, s.position_weight)
            picked = select_sentences(scores, emb, [len(t.split()) for t in texts], budget,
                                      s.max_sentences, s.redundancy)
            method = "extractive"
        chosen = []
        for i in picked:
            start, end = sents[i].start, sents[i].end
            if self.scorer is not None and len(picked) == 1:
                start, end = fit_to_budget(article, start, end, round(budget * 1.1))
            chosen.append({"text": article[start:end], "start": start, "end": end})
        return {"summary": " ".join(c["text"] for c in chosen), "method": method, "sentences": chosen}


_GENERATION_KEYS = {"max_length", "min_length", "max_new_tokens", "min_new_tokens", "num_beams",
                    "length_penalty", "no_repeat_ngram_size", "early_stopping", "do_sample",
                    "repetition_penalty", "temperature", "top_k", "top_p"}


def pack_chunks(lengths: list[int], limit: int) -> list[list[int]]:
    """Group consecutive pieces (token lengths) into chunks of at most ``limit`` tokens, in order."""
    chunks: list[list[int]] = []
    cur: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        if cur and used + n > limit:
            chunks.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += n
    if cur:
        chunks.append(cur)
    return chunks


class AbstractiveSummarizer(_Summarizer):
    """Writes a summary with a seq2seq model; articles longer than its input are summarized chunk
    by chunk (chunks end on sentence boundaries) and the joined summaries summarized again while
    still too long (map-reduce)."""

    max_rounds = 4

    def __init__(self, settings: SummarizerSettings, model: str, device: str = "cpu"):
        super().__init__(settings, model, device)
        self.tokenizer = self.model = None

    def warm_up(self) -> None:
        if self.model is None:
            self.tokenizer, self.model = load_pretrained(self.model_name, "seq2seq", self.device)

    @property
    def input_limit(self) -> int:
        """Tokens the encoder takes, special tokens included."""
        cfg = self.model.config
        n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 512
        tok_max = getattr(self.tokenizer, "model_max_length", n) or n
        return int(min(n, tok_max, 4096))

    def generation_kwargs(self, max_words: int | None) -> dict:
        """The model's own summarization settings (config.task_specific_params), then the
        profile's overrides, then the word budget."""
        tsp = (getattr(self.model.config, "task_specific_params", None) or {}).get("summarization", {})
        kw = {k: v for k, v in tsp.items() if k in _GENERATION_KEYS}
        kw.update({k: v for k, v in self.settings.generation.items() if k in _GENERATION_KEYS})
        if max_words:
            kw.pop("max_length", None)
            # never past the decoder's positions (a long budget on a small model would index past them)
            kw["max_new_tokens"] = min(int(max_words * 1.4) + 2, self.input_limit - 2)
            kw["min_length"] = min(int(kw.get("min_length", 0)), kw["max_new_tokens"] // 2)
        return kw

    def _prefix(self) -> str:
        tsp = (getattr(self.model.config, "task_specific_params", None) or {}).get("summarization", {})
        return tsp.get("prefix", "") or ""

    def _generate(self, texts: list[str], kw: dict) -> list[str]:
        import torch
        out = []
        with torch.inference_mode():
            for b in range(0, len(texts), self.settings.batch_size):
                enc = self.tokenizer([self._prefix() + t for t in texts[b:b + self.settings.batch_size]],
                                     padding=True, truncation=True, max_length=self.input_limit,
                                     return_tensors="pt").to(self.device)
                ids = self.model.generate(**enc, **kw)
                out += [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out

    def chunks(self, text: str) -> list[str]:
        """Split text on sentence boundaries into pieces that fit the model's input; a sentence
        longer than the input is split on word boundaries."""
        limit = self.input_limit - 8 - len(self.tokenizer(self._prefix(), add_special_tokens=False)["input_ids"])
        pieces: list[str] = []
        for s in split_sentences(text):
            t = s.text(text)
            enc = self.tokenizer(t, add_special_tokens=False, return_offsets_mapping=True)
            if len(enc["input_ids"]) <= limit:
                pieces.append(t)
                continue
            offs = enc["offset_mapping"]
            for a in range(0, len(offs), limit):
                seg = offs[a:a + limit]
                pieces.append(t[seg[0][0]:seg[-1][1]])
        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) + 1 for p in pieces]
        return [" ".join(pieces[i] for i in group) for group in pack_chunks(lengths, limit)]

    def run(self, article: str, max_words: int | None = None) -> dict:
        if self.model is None:
            raise RuntimeError("AbstractiveSummarizer used before warm_up().")
        budget = max_words or self.settings.max_words
        text = article[:body_end(article)]
        kw = self.generation_kwargs(max_words)
        rounds, n_chunks = 0, 0
        while True:
            parts = self.chunks(text)
            n_chunks = n_chunks or len(parts)
            before = sum(len(p) for p in parts)
            text = " ".join(s for s in self._generate(parts, kw) if s)
            rounds += 1
            if len(parts) == 1 or rounds >= self.max_rounds:
                break
            if len(text) * 1.5 > before:
                break  # the model no longer shrinks the text: another round would not converge
            if len(self.chunks(text)) == 1 and len(text.split()) <= budget * 1.5:
                text = " ".join(self._generate([text], kw))  # one coherent summary of the joined parts
                rounds += 1
                break
        return {"summary": text, "method": "abstractive", "sentences": [], "chunks": n_chunks, "rounds": rounds}


def make_summarizer(settings: SummarizerSettings, model: str, device: str,
                    encoder: SentenceEncoder | None = None):
    """The summarizer a profile asks for (``encoder``: a sentence encoder of ``model`` to share)."""
    if settings.method == "abstractive":
        return AbstractiveSummarizer(settings, model, device)
    return ExtractiveSummarizer(settings, model, device, encoder)


__all__ = ["ExtractiveSummarizer", "AbstractiveSummarizer", "make_summarizer", "ModelLoadError"]
