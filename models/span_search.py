"""Span search for one question: its windows' logits -> candidate spans, ranked under the shipped
priors, nested duplicates merged. Small functions over numpy arrays (models/spans.py holds the
span math itself); the reader's ``postprocess`` chains them.

Priors reorder candidates, never the no-answer decision (each candidate's ``window_score`` and
``null`` stay its window's): the span normalisation over the whole article
(``spans.article_norm_factors``), the window prior (a less relevant window's spans weigh less),
the repeat prior (``spans.repeat_factors``) and the sentence prior
(``spans.sentence_prior_factors``).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.spans import (Candidate, article_norm_factors, merge_candidates, repeat_factors,
                          sentence_prior_factors, to_candidates, window_spans)
from models.text import Sentence, sentence_at
from models.window_select import query_terms, question_term_count
from models.windows import Windows

# spans kept per window before merging: enough that the window prior, which reorders spans across
# windows, and the removal of nested duplicates still leave top_k distinct candidates
SPANS_PER_WINDOW = 20
# the sentence prior embeds only the sentences of candidates scoring at least this share of the
# best (the others count as the least similar, which cannot lift them past the best)
PRIOR_MIN_SHARE = 1e-4
# bounds the (windows, T, T) span-score array computed at once
SCORE_CELLS = 4_000_000


def question_rows(windows: Windows, q: int) -> np.ndarray:
    """The indices of question ``q``'s windows."""
    return np.flatnonzero(windows.sample == q)


def stacked_logits(windows: Windows, start: list[np.ndarray], end: list[np.ndarray], rows: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, article-token mask) of ``rows`` as (len(rows), longest) arrays, padded with
    -1e4 logits outside the mask."""
    width = max(len(start[w]) for w in rows)
    start_logits = np.full((len(rows), width), -1e4, dtype=np.float32)
    end_logits = np.full_like(start_logits, -1e4)
    mask = np.zeros((len(rows), width), dtype=bool)
    for r, w in enumerate(rows):
        n = len(start[w])
        start_logits[r, :n], end_logits[r, :n], mask[r, :n] = start[w], end[w], windows.context_mask[w]
    return start_logits, end_logits, mask


def search_spans(article: str, windows: Windows, rows: np.ndarray, start_logits: np.ndarray,
                 end_logits: np.ndarray, mask: np.ndarray, max_answer_len: int, top_n: int,
                 length_penalty: float) -> list[Candidate]:
    """The best ``top_n`` spans of each window, as character ranges of the article."""
    cands: list[Candidate] = []
    chunk = max(1, SCORE_CELLS // (start_logits.shape[1] ** 2))
    for c in range(0, len(rows), chunk):
        spans, scores, null_scores = window_spans(start_logits[c:c + chunk], end_logits[c:c + chunk],
                                                  mask[c:c + chunk], max_answer_len, top_n, length_penalty)
        cands += to_candidates(article, spans, scores, null_scores, windows.offsets, list(rows[c:c + chunk]))
    return cands


def window_factors(windows: Windows, rows: np.ndarray, start_logits: np.ndarray, end_logits: np.ndarray,
                   mask: np.ndarray, span_norm: str, window_prior: float) -> np.ndarray:
    """Each window's factor on its spans' scores: the span normalisation over the whole article
    ("article") times the window prior exp(-window_prior * (1 - relevance))."""
    factor = np.ones(len(windows))
    if span_norm == "article":
        factor[rows] = article_norm_factors(start_logits, end_logits, mask)
    if window_prior and windows.relevance is not None:
        factor *= np.exp(-window_prior * (1.0 - windows.relevance))
    return factor


def question_repeat_factors(article: str, question: str, cands: list[Candidate], weight: float) -> np.ndarray:
    """The repeat prior of each candidate: its words that repeat the question's content words."""
    terms = set(query_terms(question))
    return repeat_factors(np.array([question_term_count(terms, article[c.start:c.end]) for c in cands]), weight)


def sentence_factors(article: str, sentences: list[Sentence], cands: list[Candidate],
                     similarity: Callable[[list[str]], np.ndarray], weight: float) -> np.ndarray:
    """The sentence prior of each candidate. Only the sentences of candidates scoring at least
    ``PRIOR_MIN_SHARE`` of the best are embedded."""
    best = max(c.score for c in cands)
    where = [sentence_at(sentences, c.start) if c.score >= PRIOR_MIN_SHARE * best else None for c in cands]
    text_of = [s.text(article) if s is not None else None for s in where]
    texts = list(dict.fromkeys(t for t in text_of if t is not None))
    cos = dict(zip(texts, similarity(texts).tolist())) if texts else {}
    return sentence_prior_factors(np.array([cos.get(t, np.nan) for t in text_of]), weight)


def ranked_candidates(article: str, sentences: list[Sentence], windows: Windows, start: list[np.ndarray],
                      end: list[np.ndarray], rows: np.ndarray, question: str, *, max_answer_len: int,
                      top_n: int, keep: int, length_penalty: float, span_norm: str, window_prior: float,
                      repeat_penalty: float, sentence_prior: float,
                      similarity: Callable[[list[str]], np.ndarray] | None) -> tuple[list[Candidate], float]:
    """The question's candidates, best first, at most ``keep`` after merging, and ``mass``: the
    summed score of every span decoded for it (what a candidate's ``share`` is of)."""
    start_logits, end_logits, mask = stacked_logits(windows, start, end, rows)
    cands = search_spans(article, windows, rows, start_logits, end_logits, mask, max_answer_len,
                         max(top_n, SPANS_PER_WINDOW), length_penalty)
    factor = window_factors(windows, rows, start_logits, end_logits, mask, span_norm, window_prior)
    for cand in cands:
        cand.score *= float(factor[cand.window])
    if repeat_penalty and cands:
        for cand, f in zip(cands, question_repeat_factors(article, question, cands, repeat_penalty)):
            cand.score *= float(f)
    if sentence_prior and similarity is not None and cands:
        for cand, f in zip(cands, sentence_factors(article, sentences, cands, similarity, sentence_prior)):
            cand.score *= float(f)
    mass = sum(c.score for c in cands)
    return merge_candidates(cands, article, keep), mass
