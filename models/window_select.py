"""Question-aware window selection: score each window of a long article against the question with
BM25 and read only the best few with the QA model (the ``fast`` profile's main saving).

Scoring is plain word matching (lower-cased words, stop words dropped, a trailing plural "s"
stripped), so it costs microseconds per window next to the milliseconds of a forward pass. The
article's words are indexed once per article and reused for every question.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from models.windows import Windows, select_windows

WORD = re.compile(r"\w+", re.UNICODE)
STOP_WORDS = frozenset("""
a an the and or but if of at by for with about against between into through during before after
above below to from up down in out on off over under again further then once here there when where
why how all any both each few more most other some such no nor not only own same so than too very
s t can will just don should now is are was were be been being have has had having do does did
doing i me my we our you your he him his she her it its they them their what which who whom this
that these those am would could also as
""".split())


def term(word: str) -> str:
    """A word's matching form: lower case, a plural "s" dropped from longer words."""
    w = word.lower()
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def query_terms(question: str) -> list[str]:
    """The question's distinct content terms, in order."""
    seen: dict[str, None] = {}
    for m in WORD.finditer(question):
        t = term(m.group())
        if t not in STOP_WORDS:
            seen.setdefault(t)
    return list(seen)


def question_term_count(terms: set[str] | frozenset[str], text: str) -> int:
    """How many words of ``text`` are one of the question's content ``terms`` (``query_terms``),
    matched as BM25 matches them. An answer seldom repeats its question: "Why is Russia under
    sanctions?" is answered by "for its aggression in Ukraine", not by "Russia for its aggression
    in Ukraine" (the repeat prior, ``models.spans.repeat_factors``)."""
    return sum(term(m.group()) in terms for m in WORD.finditer(text)) if terms else 0


@dataclass
class WordIndex:
    """Where each term occurs in an article: word start offsets and, per term, word positions."""

    starts: np.ndarray                 # (n_words,) character offset of each word
    positions: dict[str, np.ndarray]   # term -> sorted word indices

    @classmethod
    def build(cls, article: str) -> "WordIndex":
        starts, pos = [], defaultdict(list)
        for i, m in enumerate(WORD.finditer(article)):
            starts.append(m.start())
            pos[term(m.group())].append(i)
        return cls(np.asarray(starts, dtype=np.int64),
                   {t: np.asarray(p, dtype=np.int64) for t, p in pos.items()})


def bm25_scores(index: WordIndex, spans: np.ndarray, question: str, k1: float = 1.2,
                b: float = 0.75) -> np.ndarray:
    """BM25 score of each character span (a window) against the question.

    Args:
        index: the article's ``WordIndex``.
        spans: (n, 2) character start/end of each window.
        question: the question text.
    Returns:
        (n,) scores; all zero when no content word of the question is in the article.
    """
    lo = np.searchsorted(index.starts, spans[:, 0], side="left")
    hi = np.searchsorted(index.starts, spans[:, 1], side="left")
    length = np.maximum(hi - lo, 1).astype(np.float64)
    norm = k1 * (1 - b + b * length / length.mean())
    n = len(spans)
    scores = np.zeros(n)
    for t in query_terms(question):
        pos = index.positions.get(t)
        if pos is None:
            continue
        tf = (np.searchsorted(pos, hi, side="left") - np.searchsorted(pos, lo, side="left")).astype(np.float64)
        df = np.count_nonzero(tf)
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
        scores += idf * tf * (k1 + 1) / (tf + norm)
    return scores


def best_windows(scores: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the ``keep`` best-scoring windows, earlier windows first on ties, in article
    order (news and encyclopedia articles put key facts early)."""
    if keep <= 0 or keep >= len(scores):
        return np.arange(len(scores))
    order = np.lexsort((np.arange(len(scores)), -scores))
    return np.sort(order[:keep])


def context_spans(windows: Windows, rows: np.ndarray, margin: int = 0) -> np.ndarray:
    """(len(rows), 2) character start/end of the article text of windows ``rows`` (one
    question's windows, in article order); with ``margin``, less ``margin`` tokens at each edge
    shared with a neighbour (the first window keeps its start, the last its end): with
    ``margin`` half the windows' overlap, the cores tile the article, each token in the window
    that holds it nearest its middle."""
    out = np.zeros((len(rows), 2), dtype=np.int64)
    for i, w in enumerate(rows):
        o = windows.offsets[w][windows.context_mask[w]]
        if not len(o):
            continue
        lo = min(margin if i > 0 else 0, len(o) - 1)
        hi = max(len(o) - 1 - (margin if i < len(rows) - 1 else 0), lo)   # a window shorter than two margins: one token
        out[i] = o[lo, 0], o[hi, 1]
    return out


def budgeted_windows(windows: Windows, index: WordIndex, questions: list[str], max_windows: int,
                     min_relevance: float = 0.0, core_margin: int = 0) -> Windows:
    """``windows`` with each window's BM25 relevance to its question (its score over the best of
    that question's windows) and, with ``max_windows``, only each question's best windows kept;
    with ``min_relevance``, only those of them whose relevance reaches it (the best always does).
    With ``core_margin``, ``min_relevance`` compares the windows' cores (``context_spans``), so a
    match in the overlap of two windows draws in one of them, not both.

    A window matching the question far less than the best one seldom holds the answer (the window
    prior already scores its spans down), yet costs as much to read as the best one."""
    keep = np.zeros(len(windows), dtype=bool)
    relevance = np.ones(len(windows))
    for q, question in enumerate(questions):
        ws = np.flatnonzero(windows.sample == q)
        scores = bm25_scores(index, context_spans(windows, ws), question)
        if scores.max() > 0:
            relevance[ws] = scores / scores.max()
        best = best_windows(scores, max_windows)
        matched = relevance[ws[best]]
        if core_margin and min_relevance > 0:     # the cores of the budget's windows, against the best of them
            core = bm25_scores(index, context_spans(windows, ws, core_margin), question)[best]
            matched = core / core.max() if core.max() > 0 else matched
        keep[ws[best[matched >= min_relevance]]] = True
    return select_windows(windows, keep if max_windows or min_relevance else None, relevance)
