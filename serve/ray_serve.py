"""Serving past one process: the engine as a Ray Serve deployment of N replicas with dynamic
batching, behind the same Gradio page and endpoints.

    python -m serve --replicas 2                      # Ray on this machine, 2 replicas
    python -m serve --replicas 4 --ray-address auto   # on a running Ray cluster

Each replica loads the profile's engine once and answers batches of requests (``@serve.batch``:
up to the profile's ``runtime.batch_requests`` requests arriving within its
``runtime.batch_wait_ms`` are read in the same forward passes, ``ExtractiveReader.run_batch``, as
the in-process ``RequestBatcher`` does). Input is checked in the replica exactly as in-process;
a user error comes back as the same ``InputError``. The page process keeps no model.
"""
from __future__ import annotations

import os

from models.loading import ModelLoadError
from models.profiles import load_profile
from models.text import InputError


def deployment_class(max_batch: int, wait_s: float):
    """The deployment, batching at most ``max_batch`` requests that arrive within ``wait_s`` (built
    on first use, so that importing this module needs no Ray)."""
    from ray import serve

    @serve.deployment
    class ArticleQAReplica:
        def __init__(self, profile: str, threads: int):
            import torch
            torch.set_num_threads(max(1, threads))
            from models.engine import get_engine
            self.engine = get_engine(profile)
            self.engine.warm_up(qa=True, summarizer=False)

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=wait_s)
        async def _read(self, requests: list[tuple]) -> list[tuple]:
            results = self.engine.run_batch(list(requests))
            return [("error", str(r)) if isinstance(r, Exception) else ("ok", r) for r in results]

        async def predict_many(self, article, questions, top_k=None) -> tuple:
            try:
                text, qs = self.engine.check_questions(article, questions, top_k)
            except InputError as exc:
                return ("input", str(exc))
            status, value = await self._read((text, qs, top_k))
            if status == "ok":
                for q, r in zip(qs, value):
                    r["question"] = q
            return status, value

        def summarize(self, article, max_words=None) -> tuple:
            try:
                return "ok", self.engine.summarize(article, max_words)
            except InputError as exc:
                return "input", str(exc)

    return ArticleQAReplica


class RayEngine:
    """What the page and endpoints need of an engine (``profile``, ``predict_many``,
    ``summarize``, ``warm_up``), answered by the replicas."""

    def __init__(self, handle, profile: str):
        self.handle = handle
        self.profile = load_profile(profile)

    def warm_up(self, qa: bool = True, summarizer: bool = True) -> None:
        """The replicas loaded their models when they started."""

    @staticmethod
    def _unwrap(reply: tuple):
        status, value = reply
        if status == "input":
            raise InputError(value)
        if status == "error":
            raise ModelLoadError(value)
        return value

    def predict_many(self, article, questions, top_k=None, progress=None) -> list[dict]:
        return self._unwrap(self.handle.predict_many.remote(article, questions, top_k).result())

    def summarize(self, article, max_words=None) -> dict:
        return self._unwrap(self.handle.summarize.remote(article, max_words).result())


def start_replicas(profile: str, replicas: int, address: str = "local", threads: int | None = None) -> RayEngine:
    """Start (or join) Ray, deploy ``replicas`` replicas of the profile's engine, each with
    ``threads`` torch threads (default: this machine's cores split between them)."""
    from ray import serve

    from serve.ray_batch import connect
    threads = threads or max(1, (os.cpu_count() or 1) // replicas)
    connect(address, cpus=replicas * threads)
    prof = load_profile(profile)
    rt = prof.runtime
    max_batch = max(1, rt.batch_requests)
    app = deployment_class(max_batch, rt.batch_wait_ms / 1000).options(
        num_replicas=replicas, ray_actor_options={"num_cpus": threads},
        max_ongoing_requests=4 * max_batch).bind(str(prof.path), threads)
    handle = serve.run(app, name="article-qa", route_prefix=None)
    return RayEngine(handle, str(prof.path))
