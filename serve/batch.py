"""Corpus mode: the same questions asked of every article of a corpus, answers written as JSONL.

    python -m serve batch --articles articles.jsonl --questions questions.txt --out answers.jsonl

``articles.jsonl`` holds one JSON object a line with ``id`` and ``article`` (or ``text``);
``questions.txt`` one question a line. ``answers.jsonl`` gets one row per (article, question):
``id``, ``question`` and the fields of ``predict`` (``answer``, ``score``, ``start``, ``end``,
``sentence``), or ``error`` for an article that cannot be read (it never stops the run).

Resumable: an article's rows are written together (one write, flushed) once it is answered, and a
rerun skips the articles whose rows are all in ``--out``, so after a crash or Ctrl+C nothing is
written twice and nothing is lost: what a crash left unfinished (a line cut short, an article
with only some of its rows) is removed before resuming. Article ids must be unique; a repeated id
is answered once.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from models.text import InputError

ROW_FIELDS = ("answer", "score", "start", "end", "sentence")


ARTICLE_FILES = (".txt", ".md", ".html", ".htm", ".pdf")


def read_articles(path: str | Path) -> Iterator[tuple[str, object]]:
    """(id, article) per line of a JSONL file, or per file of a folder (text, HTML pages and
    PDFs, ``ARTICLE_FILES``; the id is the file name, the article its main text, models.extract);
    a line or file that cannot be read gives (its id, an InputError) so that it becomes error rows."""
    if Path(path).is_dir():
        from models.extract import extract
        for file in sorted(p for p in Path(path).iterdir() if p.suffix.lower() in ARTICLE_FILES):
            try:
                yield file.name, extract(file.read_bytes()).text
            except InputError as exc:
                yield file.name, exc
        return
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"line-{n}", InputError(f"line {n} is not JSON: {exc.msg}")
                continue
            if not isinstance(obj, dict) or "id" not in obj:
                yield f"line-{n}", InputError(f"line {n} has no 'id'")
                continue
            yield str(obj["id"]), obj.get("article", obj.get("text"))


def read_questions(path: str | Path) -> list[str]:
    """One question per non-empty line."""
    qs = [q.strip() for q in Path(path).read_text(encoding="utf-8").splitlines() if q.strip()]
    if not qs:
        raise InputError(f"{path} holds no question")
    return qs


def done_ids(out: Path, n_questions: int) -> set[str]:
    """Ids of the articles whose ``n_questions`` rows are all in ``out``. What a crash left
    unfinished (a line cut short, an article with only some of its rows) is removed from the file
    first (rewritten whole, then renamed into place), so that article is answered again."""
    if not out.exists():
        return set()
    lines = out.read_bytes().split(b"\n")
    rows = []
    for line in lines[:-1]:              # the part after the last newline is a cut line, if any
        try:
            rows.append((json.loads(line)["id"], line))
        except (ValueError, KeyError, TypeError):
            continue
    count: dict[str, int] = {}
    for article_id, _ in rows:
        count[article_id] = count.get(article_id, 0) + 1
    done = {a for a, n in count.items() if n >= n_questions}
    keep = [line for article_id, line in rows if article_id in done]
    if len(keep) != len(lines) - 1 or lines[-1]:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(b"".join(line + b"\n" for line in keep))
        tmp.replace(out)
    return done


def answer_rows(engine, article_id: str, article: object, questions: list[str]) -> list[dict]:
    """The rows of one article: one per question, or one error row per question."""
    try:
        if isinstance(article, Exception):
            raise article
        cap = engine.profile.limits.max_questions
        results = [r for k in range(0, len(questions), cap)
                   for r in engine.predict_many(article, questions[k:k + cap])]
        return [{"id": article_id, "question": q, **{k: r[k] for k in ROW_FIELDS}, "error": None}
                for q, r in zip(questions, results)]
    except (InputError, ValueError, TypeError) as exc:
        return [{"id": article_id, "question": q, **{k: None for k in ROW_FIELDS}, "error": str(exc)}
                for q in questions]


def run_corpus(engine, articles: str | Path, questions: str | Path, out: str | Path,
               progress: bool = True) -> dict:
    """Answer every article not yet in ``out``; returns counts (articles answered, skipped,
    with errors; rows written)."""
    from tqdm import tqdm
    qs = read_questions(questions)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    skip = done_ids(out, len(qs))
    counts = {"answered": 0, "skipped": 0, "errors": 0, "rows": 0}
    with open(out, "a", encoding="utf-8") as f:
        for article_id, article in tqdm(read_articles(articles), desc="articles", unit="article",
                                        disable=not progress):
            if article_id in skip:
                counts["skipped"] += 1
                continue
            rows = answer_rows(engine, article_id, article, qs)
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
            skip.add(article_id)
            counts["answered"] += 1
            counts["errors"] += int(rows[0]["error"] is not None)
            counts["rows"] += len(rows)
    return counts
