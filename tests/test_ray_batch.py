"""Corpus mode on local Ray Data (2 single-thread actors, no cluster): the same rows as in-process,
resumable, bad articles as error rows. Skipped, saying why, where the Ray extra is missing."""
import json
import sys

import pytest

from serve.batch import run_corpus
from serve.ray_batch import CorpusAnswerer
from serve.api import get_engine
from tests.test_batch import corpus, rows_of

ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install -e '.[scale]'; make test does)")


class CrashOnce(CorpusAnswerer):
    """Exits its process (no clean-up, like SIGKILL) the first time it is handed a batch."""
    marker = ""

    def __call__(self, batch: dict) -> dict:
        import os
        from pathlib import Path
        if not Path(self.marker).exists():
            Path(self.marker).touch()
            os._exit(1)
        return super().__call__(batch)


@pytest.fixture(scope="module")
def local_ray():
    from serve.ray_batch import connect
    connect("local", cpus=2)
    yield
    ray.shutdown()


def key(rows):
    return sorted((r["id"], r["question"], r["answer"], r["start"], r["end"], r["error"]) for r in rows)


def test_ray_batch_equals_in_process_and_resumes(local_ray, tmp_path, tiny_profile, seed_article):
    from serve.ray_batch import run_corpus_ray
    _, articles, questions = corpus(tmp_path, seed_article)
    plain = tmp_path / "plain.jsonl"
    run_corpus(get_engine(tiny_profile), articles, questions, plain, progress=False)
    on_ray = tmp_path / "ray.jsonl"
    counts = run_corpus_ray(tiny_profile, articles, questions, on_ray, "local", actors=2, progress=False)
    assert counts == {"answered": 6, "skipped": 0, "errors": 3, "rows": 12}
    assert key(rows_of(on_ray)) == key(rows_of(plain))
    scores = {(r["id"], r["question"]): r["score"] for r in rows_of(plain)}
    assert all(r["score"] == pytest.approx(scores[(r["id"], r["question"])], abs=1e-6)
               for r in rows_of(on_ray) if r["score"] is not None)
    # interrupted after two articles and half a line: the rerun adds what is missing, once
    lines = on_ray.read_text(encoding="utf-8").splitlines(keepends=True)
    on_ray.write_text("".join(lines[:4]) + lines[4][:10], encoding="utf-8")
    again = run_corpus_ray(tiny_profile, articles, questions, on_ray, "local", actors=2, progress=False)
    assert again["skipped"] == 2 and again["answered"] == 4
    assert key(rows_of(on_ray)) == key(rows_of(plain))
    assert any(r["error"] == "The article is empty." for r in rows_of(on_ray))


def test_ray_serve_replicas_answer_like_the_engine(local_ray, tiny_profile, seed_article):
    """Two replicas behind the Python interface the page uses: the same answers as in-process,
    concurrent requests batched, user errors as InputError."""
    from concurrent.futures import ThreadPoolExecutor

    from ray import serve

    from models.text import InputError
    from serve.ray_serve import start_replicas
    engine = start_replicas(tiny_profile, replicas=2, address="local", threads=1)
    try:
        qs = ["What did Putin give Kim?", "Who is Kim's sister?"]
        want = get_engine(tiny_profile).predict_many(seed_article, qs)
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda _: engine.predict_many(seed_article, qs), range(6)))
        for g in got:
            assert [(r["answer"], r["start"], r["end"], r["question"]) for r in g] == \
                   [(w["answer"], w["start"], w["end"], w["question"]) for w in want]
        with pytest.raises(InputError, match="The article is empty"):
            engine.predict_many("", qs)
        with pytest.raises(InputError, match="no letter or digit"):
            engine.predict_many(seed_article, ["?!?"])
    finally:
        serve.shutdown()


def test_ray_batch_survives_an_actor_dying_mid_run(local_ray, tmp_path, tiny_profile, seed_article):
    """An actor process that exits mid-batch (as if killed) is restarted and its batch retried:
    every row is written once and the answers are those of the in-process run."""
    from ray import cloudpickle   # Ray pickles with its own copy

    from serve.ray_batch import run_corpus_ray
    _, articles, questions = corpus(tmp_path, seed_article)
    plain = tmp_path / "plain.jsonl"
    run_corpus(get_engine(tiny_profile), articles, questions, plain, progress=False)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the actors get CrashOnce by value
    try:
        CrashOnce.marker = str(tmp_path / "crashed")
        out = tmp_path / "ray.jsonl"
        counts = run_corpus_ray(tiny_profile, articles, questions, out, "local", actors=2,
                                articles_per_batch=1, progress=False, answerer=CrashOnce)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert (tmp_path / "crashed").exists(), "no actor died: the test did not test a failure"
    assert counts["answered"] == 6 and counts["rows"] == 12
    got = rows_of(out)
    assert len({(r["id"], r["question"]) for r in got}) == len(got) == 12
    assert key(got) == key(rows_of(plain))

