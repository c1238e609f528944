"""The engine: one profile's reader and summarizer, loaded once and shared by every caller.

``get_engine(profile)`` is the one place that turns a profile name (or YAML path) into loaded
models; the Python API (``serve.api``), the web page, the evaluation suite and the benchmarks all
ask it. Input is checked here, once, before any model runs; inference runs one request at a time
(torch already uses every core).
"""
from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import Future
from collections.abc import Callable
from contextlib import contextmanager

from models.loading import ModelLoadError, pick_device
from models.memory import release_free_memory
from models.profiles import Profile, load_profile, profile_path
from models.qa import ExtractiveReader
from models.sentence_encoder import SentenceEncoder
from models.summarize import make_summarizer
from models.text import InputError, check_question, decode_article

# what a caller may ask for per request; the web page's sliders use the same ranges
TOP_K_RANGE = (1, 20)
MAX_WORDS_RANGE = (10, 1000)


def check_int_range(name: str, value: object, bounds: tuple[int, int]) -> None:
    """None (use the profile's default) or an int within ``bounds``; else InputError."""
    lo, hi = bounds
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi):
        raise InputError(f"{name} must be an integer from {lo} to {hi}.")


class ArticleQA:
    """One profile's models (QA reader and summarizer), loaded lazily and once (``warm_up()``
    loads them now)."""

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
        # sentence encoders by weights folder: the reader's sentence prior and the extractive
        # summarizer share one when they name the same weights (`fast`), with one embedding cache
        self._encoders: dict[str, SentenceEncoder] = {}
        self.batcher: RequestBatcher | None = None

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
                rt = self.profile.runtime
                q = self.profile.qa
                # the encoder serves the sentence prior
                encoder = self._sentence_encoder(q.sentence_encoder) if q.sentence_encoder and q.sentence_prior else None
                r = ExtractiveReader(q, self.profile.resolve_model(ref) if ref else None, self._dev(),
                                     rt.dtype, rt.backend, rt.threads, encoder)
                r.warm_up()
                self.reader = r
            return self.reader

    def _sentence_encoder(self, ref: str) -> SentenceEncoder:
        """The engine's sentence encoder of ``ref``, made once by whichever of the reader and the
        summarizer asks first (called with ``_lock`` held). Its batch size is the extractive
        summarizer's setting when that embeds with these weights, else the encoder's default, so
        it does not depend on which of them asked first."""
        path = self.profile.resolve_model(ref)
        if path not in self._encoders:
            s = self.profile.summarizer
            shared = s.method == "extractive" and bool(s.model) and self.profile.resolve_model(s.model) == path
            sizing = {"batch_size": s.batch_size} if shared else {}
            self._encoders[path] = SentenceEncoder(path, self._dev(), **sizing)
        return self._encoders[path]

    def _summarizer(self):
        with self._lock:
            if self.summarizer is None:
                ref = self.profile.summarizer.model
                if not ref:
                    raise ModelLoadError(f"Profile {self.profile.name!r} has no summarizer model.")
                settings = self.profile.summarizer
                encoder = self._sentence_encoder(ref) if settings.method == "extractive" else None
                s = make_summarizer(settings, self.profile.resolve_model(ref), self._dev(), encoder)
                s.warm_up()
                self.summarizer = s
            return self.summarizer

    def predict_many(self, article: str | bytes, questions: list[str], top_k: int | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[dict]:
        """Answer several questions about one article, reading it in one batched pass.

        Everything a caller sends is checked here, once, before any model runs: the article
        (text or UTF-8 bytes, within ``limits.max_article_chars``), the questions (a non-empty
        list of at most ``limits.max_questions`` strings) and ``top_k`` (``TOP_K_RANGE``).

        Args:
            article: the article, as given by the user (offsets in the results index into it).
            questions: the questions, in order.
            top_k: candidates returned per question (default: the profile's ``qa.top_k``).
            progress: called with (windows read, windows to read) while the model reads.
        Returns:
            one result dict per question, in order (keys: see ``models.qa``), each with its
            ``question`` as checked (stripped).
        Raises:
            InputError: bad input, with a message for the user.
            ModelLoadError: the profile's reader cannot be loaded.
        """
        text, qs = self.check_questions(article, questions, top_k)
        reader = self._reader()
        if self.profile.runtime.batch_wait_ms > 0:
            results = self._batcher(reader).submit(text, qs, top_k, progress)
        else:
            with self._running():
                results = reader.run(text, qs, top_k, progress=progress)
        for q, r in zip(qs, results):
            r["question"] = q
        return results

    def check_questions(self, article: str | bytes, questions: list[str], top_k: int | None = None
                        ) -> tuple[str, list[str]]:
        """The checks of ``predict_many`` (before any model runs): (article text, questions
        stripped). Raises InputError with a message for the user."""
        lim = self.profile.limits
        text = decode_article(article, lim.max_article_chars)
        if isinstance(questions, str) or not isinstance(questions, (list, tuple)):
            raise InputError("questions must be a list of strings.")
        if not questions:
            raise InputError("No question was given.")
        if len(questions) > lim.max_questions:
            raise InputError(f"{len(questions)} questions at once; the limit is {lim.max_questions}.")
        qs = [check_question(q, lim.max_question_chars) for q in questions]
        check_int_range("top_k", top_k, TOP_K_RANGE)
        return text, qs

    def summarize(self, article: str | bytes, max_words: int | None = None) -> dict:
        """Summarize an article within ``max_words`` (``MAX_WORDS_RANGE``; default: the
        profile's ``summarizer.max_words``). Raises InputError for bad input."""
        text = decode_article(article, self.profile.limits.max_article_chars)
        check_int_range("max_words", max_words, MAX_WORDS_RANGE)
        summarizer = self._summarizer()
        with self._running():
            return summarizer.run(text, max_words)

    def run_batch(self, requests: list[tuple[str, list[str], int | None]],
                  progress: list[Callable[[int, int], None] | None] | None = None) -> list[list[dict] | Exception]:
        """Checked requests (article text, questions, top_k) read together in shared forward
        passes, under the run lock (``ExtractiveReader.run_batch``): one result list, or the
        exception its request raised, per request. The cross-request batchers (``RequestBatcher``
        here, the Ray Serve replicas in serve/ray_serve.py) call this."""
        reader = self._reader()
        with self._running():
            return reader.run_batch(requests, progress)

    def _batcher(self, reader: ExtractiveReader) -> RequestBatcher:
        with self._lock:
            if self.batcher is None:
                rt = self.profile.runtime
                self.batcher = RequestBatcher(self, rt.batch_wait_ms / 1000, rt.batch_requests)
            return self.batcher

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


class RequestBatcher:
    """Cross-request batching: questions from concurrent requests are read in the same forward
    passes. The first request waits up to ``wait_s`` for others (at most ``max_requests`` in all);
    one worker thread then answers them together (``ExtractiveReader.run_batch``) and hands each
    caller its own results, or its own error. 20 users asking at once thus share a few large
    forward passes instead of waiting for 20 small ones in turn."""

    def __init__(self, engine: ArticleQA, wait_s: float, max_requests: int):
        self.engine = engine
        self.wait_s, self.max_requests = wait_s, max(1, max_requests)
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="qa-batcher", daemon=True)
        self.thread.start()

    def submit(self, article: str, questions: list[str], top_k: int | None,
               progress: Callable[[int, int], None] | None = None) -> list[dict]:
        """Answer one request; blocks until its batch is done. Raises what the request raised."""
        job: Future = Future()
        self.queue.put((article, questions, top_k, progress, job))
        return job.result()

    def _loop(self) -> None:
        while True:
            batch = [self.queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_requests:
                try:
                    batch.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                results = self.engine.run_batch([(a, q, k) for a, q, k, _, _ in batch],
                                                [p for _, _, _, p, _ in batch])
            except Exception as exc:       # the whole batch failed (e.g. out of memory): tell everyone
                results = [exc] * len(batch)
            for (*_, job), result in zip(batch, results):
                if isinstance(result, Exception):
                    job.set_exception(result)
                else:
                    job.set_result(result)


_ENGINES: dict[str, ArticleQA] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(profile: str | os.PathLike | None = None) -> ArticleQA:
    """The shared engine of a profile (name or YAML path), created on first use."""
    key = str(profile_path(profile))
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = ArticleQA(load_profile(key))
        return _ENGINES[key]
