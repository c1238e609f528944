"""Corpus mode on Ray Data: the articles go through ``map_batches`` over a pool of actors, each
of which loads the engine once, and the driver writes each article's rows as they come back.

``python -m serve batch ... --ray local`` starts Ray on this machine (no cluster); ``--ray auto``
joins a running cluster (``ray start --head`` / ``RAY_ADDRESS``) and falls back to local;
``--ray ray://HOST:10001`` or ``HOST:6379`` joins that one. The rows are the same as in-process
(``serve.batch.answer_rows`` runs in the actors), written in the order batches finish, so compare
runs after sorting by id. Resuming works the same way: articles already in ``--out`` are not sent.
Ray is an optional extra: ``pip install -e '.[scale]'``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from serve.batch import answer_rows, done_ids, read_articles, read_questions


class CorpusAnswerer:
    """A Ray Data actor: the engine of one profile, loaded once, answering batches of articles."""

    def __init__(self, profile: str, questions: list[str], threads: int):
        import torch
        torch.set_num_threads(max(1, threads))
        from models.engine import get_engine
        self.engine = get_engine(profile)
        self.engine.warm_up(qa=True, summarizer=False)
        self.questions = questions

    def __call__(self, batch: dict) -> dict:
        out = []
        for article_id, article, error in zip(batch["id"], batch["article"], batch["error"]):
            # the article travels as JSON, so a non-text one reaches answer_rows as it was read
            source = ValueError(error) if error else json.loads(article)
            out.append("".join(json.dumps(r, ensure_ascii=False) + "\n"
                               for r in answer_rows(self.engine, str(article_id), source, self.questions)))
        return {"id": list(batch["id"]), "rows": out}


def connect(address: str, cpus: int | None = None) -> None:
    """Start or join Ray: "local" (this machine, no cluster), "auto" (a running cluster, else
    local) or a cluster address."""
    import ray
    if ray.is_initialized():
        return
    quiet = dict(log_to_driver=False, include_dashboard=False, logging_level="ERROR")
    if address == "local":
        ray.init(num_cpus=cpus or os.cpu_count(), **quiet)
    elif address == "auto":
        try:
            ray.init(address="auto", **quiet)
        except (ConnectionError, RuntimeError):
            ray.init(num_cpus=cpus or os.cpu_count(), **quiet)
    else:
        ray.init(address=address, **quiet)


def run_corpus_ray(profile: str, articles: str | Path, questions: str | Path, out: str | Path,
                   address: str = "local", actors: int = 2, threads_per_actor: int = 1,
                   articles_per_batch: int = 4, progress: bool = True,
                   answerer: type = CorpusAnswerer) -> dict:
    """Answer every article not yet in ``out`` on Ray Data; same rows and counts as
    ``serve.batch.run_corpus``.

    An actor that dies (killed, out of memory, its node lost) is restarted by Ray and the batch it
    held is retried (Ray Data's defaults: ``max_restarts=-1``, ``max_task_retries=-1``); rows are
    written only when a batch comes back, so a retried batch is written once. ``answerer`` is the
    actor class (a subclass of ``CorpusAnswerer``)."""
    import ray
    from tqdm import tqdm
    qs = read_questions(questions)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    skip = done_ids(out, len(qs))
    pending, skipped, seen = [], 0, set(skip)
    for article_id, article in read_articles(articles):
        if article_id in seen:
            skipped += 1
            continue
        seen.add(article_id)
        bad = isinstance(article, Exception)          # a line that could not be read
        pending.append({"id": article_id, "article": "" if bad else json.dumps(article),
                        "error": str(article) if bad else ""})
    counts = {"answered": 0, "skipped": skipped, "errors": 0, "rows": 0}
    if not pending:
        return counts
    connect(address, cpus=actors * threads_per_actor)
    ds = ray.data.from_items(pending).map_batches(
        answerer, fn_constructor_kwargs={"profile": str(profile), "questions": qs,
                                               "threads": threads_per_actor},
        batch_size=articles_per_batch, concurrency=actors, num_cpus=threads_per_actor, batch_format="numpy")
    with open(out, "a", encoding="utf-8") as f, tqdm(total=len(pending), desc="articles", unit="article",
                                                     disable=not progress) as bar:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for rows in batch["rows"]:
                f.write(rows)
                first = json.loads(rows.split("\n", 1)[0])
                counts["answered"] += 1
                counts["errors"] += int(first["error"] is not None)
                counts["rows"] += rows.count("\n")
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(batch["rows"]))
    return counts
