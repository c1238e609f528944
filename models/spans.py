"""Span search over QA logits: pure numpy, no model needed (the bulk of the engine's tests).

Scores are probabilities within one window: a softmax over the window's article tokens and the
[CLS] token (the model's "no answer"), for the start and for the end; a span scores
p_start * p_end and "no answer" scores p_start[CLS] * p_end[CLS]. So every score is in [0, 1].
An optional length prior multiplies a span of n tokens by exp(-length_penalty * (n - 1)), which
keeps scores in [0, 1] and one-token answers unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from models.text import answer_key, whole_word_span

CLS_INDEX = 0


@dataclass
class Candidate:
    """A candidate answer: a character range of the article with its score."""

    score: float
    start: int
    end: int
    window: int
    null: float  # the no-answer probability of the window the span comes from
    # the span's probability within its own window: the score before overlapping windows are
    # merged (merge_candidates); defaults to ``score`` for a freshly decoded span
    window_score: float | None = None
    # where else the article says the same answer (``merge_candidates``): (start, end) of each
    places: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self):
        if self.window_score is None:
            self.window_score = self.score


def masked_logsumexp(logits: np.ndarray, allowed: np.ndarray, axis: int | None = -1,
                     keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(logits))) over the ``allowed`` positions (all axes when ``axis`` is None),
    in float64 and shifted by the maximum so that large logits do not overflow."""
    x = np.where(allowed, logits.astype(np.float64), -np.inf)
    top = x.max(axis=axis, keepdims=True)
    out = top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax_masked(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Softmax along the last axis over ``allowed`` positions; others get 0."""
    x = np.where(allowed, logits.astype(np.float64), -np.inf)
    return np.exp(x - masked_logsumexp(logits, allowed, keepdims=True))


def window_spans(start_logits: np.ndarray, end_logits: np.ndarray, context_mask: np.ndarray,
                 max_answer_len: int, top_n: int,
                 length_penalty: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best token spans of a batch of windows, vectorised.

    Args:
        start_logits, end_logits: (windows, tokens).
        context_mask: (windows, tokens), True on article tokens (padding and question are False).
        max_answer_len: longest answer in tokens.
        top_n: spans kept per window.
        length_penalty: a span of n tokens has its probability multiplied by
            exp(-length_penalty * (n - 1)); 0 = no length prior. Models trained on data whose
            answers are longer than the target's (SQuAD-shifts' against SQuAD's) over-reach, and
            this prior, chosen on a development set, pulls them back.
    Returns:
        spans (windows, top_n, 2) inclusive token positions, scores (windows, top_n) with -1 where a
        window has fewer valid spans, and null (windows,) the no-answer probability.
    """
    w, t = start_logits.shape
    allowed = context_mask.copy()
    allowed[:, CLS_INDEX] = True
    ps = softmax_masked(start_logits, allowed)
    pe = softmax_masked(end_logits, allowed)
    null = ps[:, CLS_INDEX] * pe[:, CLS_INDEX]
    ps = ps * context_mask
    pe = pe * context_mask
    pair = ps[:, :, None] * pe[:, None, :]                       # (w, start, end)
    i = np.arange(t)
    length = i[None, :] - i[:, None]                             # end - start = tokens - 1
    band = (length >= 0) & (length < max_answer_len)
    if length_penalty:
        pair = pair * np.exp(-length_penalty * np.clip(length, 0, None))[None]
    pair = np.where(band[None], pair, -1.0)
    pair = np.where(context_mask[:, :, None] & context_mask[:, None, :], pair, -1.0)
    flat = pair.reshape(w, -1)
    k = min(top_n, flat.shape[1])
    idx = np.argpartition(-flat, k - 1, axis=1)[:, :k]
    scores = np.take_along_axis(flat, idx, axis=1)
    order = np.argsort(-scores, axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    spans = np.stack([idx // t, idx % t], axis=-1)
    return spans, scores, null


def article_norm_factors(start_logits: np.ndarray, end_logits: np.ndarray,
                         context_mask: np.ndarray) -> np.ndarray:
    """Per-window factors that turn in-window span probabilities into article-wide ones.

    ``window_spans`` normalises each window on its own (softmax over its article tokens and [CLS]),
    so a peaked window far from the question can outrank the right one. Multiplying a window's
    span probabilities by its factor gives exp(s_i + e_j) over the sum, across *all* windows of the
    question, of exp(s) over article tokens (and the same for ends): one softmax over the article,
    as in shared-normalisation training (Clark & Gardner 2018), with [CLS] left out.

    Args:
        start_logits, end_logits, context_mask: (windows, tokens), the windows of one question.
    Returns:
        (windows,) factors; ranking within a window is unchanged.
    """
    if not context_mask.any():
        return np.ones(len(start_logits))
    allowed = context_mask.copy()
    allowed[:, CLS_INDEX] = True
    window = masked_logsumexp(start_logits, allowed) + masked_logsumexp(end_logits, allowed)
    article = (masked_logsumexp(start_logits, context_mask, axis=None)
               + masked_logsumexp(end_logits, context_mask, axis=None))
    return np.exp(window - article)


def sentence_prior_factors(similarity: np.ndarray, weight: float) -> np.ndarray:
    """Per-candidate factors exp(weight * (sim - best sim)), where sim is the cosine between the
    question's and the candidate's sentence's embeddings (``models.sentence_encoder``): 1 for the
    candidates in the sentence most like the question, less for the others. The reader scores
    spans, not sentences, and a span that fits the question's type in a sentence about something
    else can win ("What did Putin give Kim?" -> "a grand welcome", from "Kim gave him a grand
    welcome", over the limo in "Putin gave Kim a Russian-made Aurus limo"); the sentence encoder
    compares whole statements. A candidate with no sentence (NaN) counts as the least similar.

    Args:
        similarity: (candidates,) cosines, NaN where a candidate has none.
        weight: the prior's strength (``qa.sentence_prior``), chosen on the development set.
    """
    sims = np.asarray(similarity, dtype=np.float64)
    if weight == 0 or not len(sims) or np.isnan(sims).all():
        return np.ones(len(sims))
    sims = np.where(np.isnan(sims), np.nanmin(sims), sims)
    return np.exp(weight * (sims - sims.max()))


def repeat_factors(repeats: np.ndarray, weight: float) -> np.ndarray:
    """Per-candidate factors exp(-weight * repeats), where ``repeats`` counts the span's words
    that repeat a content word of the question (``models.window_select.question_term_count``).
    A reader reads the question beside the article and often lets a span run over the words that
    match it: "Which country, along with Russia, has provided political cover for Kim?" ->
    "Russia, along with China" over "China". The penalty hands the win to the nested span without
    them, which the reader also scored. Like the other priors it changes the candidates' scores,
    not their windows' own span probabilities (``Candidate.window_score``). 0 = off; the weight
    (``qa.repeat_penalty``) is chosen on the development set."""
    counts = np.asarray(repeats, dtype=np.float64)
    return np.exp(-weight * counts) if weight else np.ones(len(counts))


def to_candidates(text: str, spans: np.ndarray, scores: np.ndarray, null: np.ndarray,
                  offsets: list[np.ndarray], windows: list[int]) -> list[Candidate]:
    """Token spans -> character ranges of the original text, widened to whole words; a span
    without a letter or digit (a lone "." or quote) is no answer and is left out."""
    out = []
    for row, w in enumerate(windows):
        off = offsets[w]
        for (s, e), sc in zip(spans[row], scores[row]):
            if sc <= 0:
                continue
            cs, ce = whole_word_span(text, int(off[s, 0]), int(off[e, 1]))
            if ce > cs and any(ch.isalnum() for ch in text[cs:ce]):
                out.append(Candidate(float(sc), cs, ce, w, float(null[row])))
    return out


def merge_candidates(cands: list[Candidate], text: str, limit: int) -> list[Candidate]:
    """Best first. The same characters found by overlapping windows are one candidate whose score
    is the sum of theirs, capped at 1 (each window's evidence counts, as in the transformers 4 QA
    pipeline); its ``window_score`` and ``null`` stay those of its best window, so the no-answer
    decision is per window. Then a candidate that overlaps a better one (a nested span) is
    dropped, and one that says the same answer elsewhere (``text.answer_key``: a repeated
    paragraph, "the tea set" beside "tea set") becomes one of the better one's ``places``. Keeps
    at most ``limit``."""
    same: dict[tuple[int, int], Candidate] = {}
    for c in sorted(cands, key=lambda c: -c.window_score):
        first = same.get((c.start, c.end))
        if first is None:
            same[(c.start, c.end)] = Candidate(c.score, c.start, c.end, c.window, c.null, c.window_score)
        else:
            first.score += c.score
    for c in same.values():
        c.score = min(c.score, 1.0)
    kept: list[Candidate] = []
    by_key: dict[str, Candidate] = {}
    for c in sorted(same.values(), key=lambda c: (-c.score, c.start)):
        if any(c.start < k.end and k.start < c.end for k in kept):
            continue
        key = answer_key(text[c.start:c.end])
        if key in by_key:
            first = by_key[key]
            if not any(c.start < e and s < c.end for s, e in first.places):
                first.places.append((c.start, c.end))
            continue
        if len(kept) < limit:
            kept.append(c)
            by_key[key] = c
    return kept


def has_answer(best: Candidate | None, null_threshold: float) -> bool:
    """The no-answer decision: answer when log(best span's score in its window) - log(that
    window's no-answer score) >= ``null_threshold``. 0 means "the span beats no-answer"; higher is stricter."""
    if best is None:
        return False
    if best.null <= 0:
        return True
    return math.log(best.window_score) - math.log(best.null) >= null_threshold


def select_list(cands: list[Candidate], list_threshold: float, max_list: int) -> list[Candidate]:
    """The answers of a list question: the best one plus every other distinct span that scores at
    least ``list_threshold`` times the best (e.g. what each side gave in an exchange)."""
    if not cands:
        return []
    best = cands[0].score
    return [c for c in cands if c.score >= list_threshold * best][:max_list]
