"""The Python API. Models load once per process and profile (on first use) and are shared by
every caller; results are plain dicts, the same ones the web endpoints return.

    from serve import predict, predict_many, summarize
    r = predict(article, "What gifts were exchanged?")      # profile="embedded", top_k=3
    r["answer"], r["score"], r["start"], r["end"], r["answers"]
    s = summarize(article)                                  # profile=..., max_words=...
    s["summary"], s["method"], s["sentences"]
    a = load_article("https://example.org/news/1")          # or a path, or a file's bytes (HTML, PDF, text)
    a.text, a.title, a.author, a.date

Bad input raises ``models.text.InputError`` (a ValueError) with a message for the user; a model
that cannot be loaded raises ``models.loading.ModelLoadError`` naming it.
"""
from __future__ import annotations

import os

from models.engine import ArticleQA, get_engine
from models.loading import ModelLoadError
from models.text import InputError
from serve.sources import load_article


def predict(article: str | bytes, question: str, top_k: int | None = None,
            profile: str | os.PathLike | None = None) -> dict:
    """Answer one question about an article.

    Returns:
        {"answer": str | None, "score": float, "start": int | None, "end": int | None,
         "sentence", "sentence_start", "answers": [...], "question", ...};
        ``article[start:end] == answer``; ``score`` is the probability that the answer is right,
        or, when ``answer`` is None (not in the article), that the article does not hold it.
        Every key is described once in models/qa.py.
    """
    return get_engine(profile).predict_many(article, [question], top_k)[0]


def predict_many(article: str | bytes, questions: list[str], top_k: int | None = None,
                 profile: str | os.PathLike | None = None) -> list[dict]:
    """Answer several questions about one article in one batched pass; one result per question."""
    return get_engine(profile).predict_many(article, questions, top_k)


def summarize(article: str | bytes, max_words: int | None = None,
              profile: str | os.PathLike | None = None) -> dict:
    """Summarize an article: {"summary", "method", "sentences" (extractive: text/start/end)}."""
    return get_engine(profile).summarize(article, max_words)


__all__ = ["ArticleQA", "get_engine", "load_article", "predict", "predict_many", "summarize", "InputError",
           "ModelLoadError"]
