"""Corpus mode: every (article, question) answered as predict_many would, resumable without
losing or repeating a row, bad articles as error rows."""
import json

from serve.__main__ import main as serve_main
from serve.api import get_engine, predict_many
from serve.batch import run_corpus
from tests.conftest import long_article

QUESTIONS = ["What did Putin give Kim?", "Who signed the treaty?"]


def corpus(tmp_path, seed_article):
    arts = [{"id": "seed", "article": seed_article}, {"id": "long", "article": long_article(800)},
            {"id": "empty", "article": ""}, {"id": "short", "article": "Putin gave Kim a limo in Pyongyang."},
            {"id": "number", "article": 12345}]
    path = tmp_path / "articles.jsonl"
    path.write_text("\n".join(json.dumps(a) for a in arts) + "\nnot json\n", encoding="utf-8")
    q = tmp_path / "questions.txt"
    q.write_text("\n".join(QUESTIONS) + "\n", encoding="utf-8")
    return arts, path, q


def rows_of(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_batch_equals_predict_many_with_error_rows(tmp_path, tiny_profile, seed_article):
    arts, articles, questions = corpus(tmp_path, seed_article)
    out = tmp_path / "answers.jsonl"
    counts = run_corpus(get_engine(tiny_profile), articles, questions, out, progress=False)
    assert counts == {"answered": 6, "skipped": 0, "errors": 3, "rows": 12}
    rows = rows_of(out)
    for a in arts:
        got = [r for r in rows if r["id"] == a["id"]]
        assert [r["question"] for r in got] == QUESTIONS
        if not a["article"]:
            assert all(r["error"] == "The article is empty." and r["answer"] is None for r in got)
            continue
        if not isinstance(a["article"], str):
            assert all(r["error"] == "The article must be text, not int." for r in got)
            continue
        want = predict_many(a["article"], QUESTIONS, profile=tiny_profile)
        assert [(r["answer"], r["start"], r["end"], r["score"]) for r in got] == \
               [(w["answer"], w["start"], w["end"], w["score"]) for w in want]
        assert all(r["error"] is None for r in got)
    assert any(r["id"] == "line-6" and "not JSON" in r["error"] for r in rows)


def test_resume_after_a_crash_writes_every_row_once(tmp_path, tiny_profile, seed_article):
    _, articles, questions = corpus(tmp_path, seed_article)
    out = tmp_path / "answers.jsonl"
    run_corpus(get_engine(tiny_profile), articles, questions, out, progress=False)
    complete = out.read_text(encoding="utf-8")
    lines = complete.splitlines(keepends=True)
    # a crash while writing the third article's rows: two articles done, the third with one of
    # its two rows and a second line cut in half
    out.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2], encoding="utf-8")
    code = serve_main(["--profile", tiny_profile, "batch", "--articles", str(articles),
                       "--questions", str(questions), "--out", str(out)])
    assert code == 0
    again = rows_of(out)
    assert len(again) == len(lines)
    assert sorted((r["id"], r["question"]) for r in again) == sorted(
        (json.loads(x)["id"], json.loads(x)["question"]) for x in lines)
    counts = run_corpus(get_engine(tiny_profile), articles, questions, out, progress=False)
    assert counts["answered"] == 0 and counts["skipped"] == 6 and len(rows_of(out)) == len(lines)
