"""The Python API. Models load once per process and profile (on first use) and are shared by
every caller; results are plain dicts, the same ones the web endpoints return.

    from serve import predict, predict_many, summarize
    r = predict(article, "What gifts were exchanged?")      # profile="embedded", top_k=3
    r["answer"], r["score"], r["start"], r["end"], r["answers"]
    s = summarize(article)                                  # profile=..., max_words=...
    s["summary"], s["method"], s["sentences"]

Bad input raises ``models.text.InputError`` (a ValueError) with a message for the user; a model
that cannot be loaded raises ``models.loading.ModelLoadError`` naming it.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

from models.loading import ModelLoadError, pick_device
from models.profiles import Profile, load_profile, profile_path
from models.qa import ExtractiveReader
from models.summarize import make_summarizer
from models.text import InputError, check_question, decode_article
from serve.memory import release_free_memory


class ArticleQA:
    """One profile's models (QA reader and summarizer), loaded lazily and once."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self.device = "cpu"
        rt = profile.runtime
        if rt.threads:
            import torch
            torch.set_num_threads(rt.threads)
        self._device_checked = False
        self._lock = threading.Lock()          # guards loading
        self._count_lock = threading.Lock()
        self._waiting = 0                      # requests holding or waiting for the run lock
        self._run_lock = threading.Lock()      # one inference at a time: torch already uses every
        # core, and a fast tokenizer must not be reconfigured by two threads at once
        self.reader: ExtractiveReader | None = None
        self.summarizer = None

    def _dev(self) -> str:
        if not self._device_checked:
            self.device = pick_device(self.profile.runtime.device)
            self._device_checked = True
        return self.device

    def warm_up(self, qa: bool = True, summarizer: bool = True) -> None:
        """Load the models now rather than on the first request."""
        if qa:
            self._reader()
        if summarizer:
            self._summarizer()

    def _reader(self) -> ExtractiveReader:
        with self._lock:
            if self.reader is None:
                ref = self.profile.qa.model
                r = ExtractiveReader(self.profile.qa, self.profile.resolve_model(ref) if ref else None, self._dev())
                r.warm_up()
                self.reader = r
            return self.reader

    def _summarizer(self):
        with self._lock:
            if self.summarizer is None:
                ref = self.profile.summarizer.model
                if not ref:
                    raise ModelLoadError(f"Profile {self.profile.name!r} has no summarizer model.")
                s = make_summarizer(self.profile.summarizer, self.profile.resolve_model(ref), self._dev())
                s.warm_up()
                self.summarizer = s
            return self.summarizer

    def predict_many(self, article: str | bytes, questions: list[str], top_k: int | None = None) -> list[dict]:
        lim = self.profile.limits
        text = decode_article(article, lim.max_article_chars)
        if isinstance(questions, str) or not isinstance(questions, (list, tuple)):
            raise InputError("questions must be a list of strings.")
        if not questions:
            raise InputError("No question was given.")
        if len(questions) > lim.max_questions:
            raise InputError(f"{len(questions)} questions at once; the limit is {lim.max_questions}.")
        qs = [check_question(q, lim.max_question_chars) for q in questions]
        if top_k is not None and (not isinstance(top_k, int) or not 1 <= top_k <= 20):
            raise InputError("top_k must be an integer from 1 to 20.")
        reader = self._reader()
        with self._running():
            results = reader.run(text, qs, top_k)
        for q, r in zip(qs, results):
            r["question"] = q
        return results

    def summarize(self, article: str | bytes, max_words: int | None = None) -> dict:
        text = decode_article(article, self.profile.limits.max_article_chars)
        if max_words is not None and (not isinstance(max_words, int) or not 10 <= max_words <= 1000):
            raise InputError("max_words must be an integer from 10 to 1000.")
        summarizer = self._summarizer()
        with self._running():
            return summarizer.run(text, max_words)

    @contextmanager
    def _running(self):
        """Hold the run lock; the last request out hands freed memory back to the OS. Trimming
        only when no other request waits keeps the trim's page-fault cost off busy periods, and
        memory returns to its resting size after every burst."""
        with self._count_lock:
            self._waiting += 1
        try:
            with self._run_lock:
                yield
        finally:
            with self._count_lock:
                self._waiting -= 1
                idle = self._waiting == 0
            if idle and self.profile.runtime.release_memory:
                release_free_memory()


_ENGINES: dict[str, ArticleQA] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(profile: str | os.PathLike | None = None) -> ArticleQA:
    """The shared engine of a profile (name or YAML path), created on first use."""
    key = str(profile_path(profile))
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = ArticleQA(load_profile(key))
        return _ENGINES[key]


def predict(article: str | bytes, question: str, top_k: int | None = None,
            profile: str | os.PathLike | None = None) -> dict:
    """Answer one question about an article.

    Returns:
        {"answer": str | None, "score": float, "confidence": float, "start": int | None,
         "end": int | None, "sentence", "sentence_start", "answers": [...], "question", "windows"};
        ``article[start:end] == answer``; ``answer`` is None when it is not in the article (then
        ``score`` and ``confidence`` are the no-answer probability). ``score`` ranks answers;
        ``confidence`` is the one to show (see models/qa.py).
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


__all__ = ["ArticleQA", "get_engine", "predict", "predict_many", "summarize", "InputError", "ModelLoadError"]
