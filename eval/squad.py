"""Reading SQuAD-format JSON (v1.1 and v2.0, plain or zipped) into flat examples."""
from __future__ import annotations

import json
import random
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from models.text import split_sentences


# a name: a run of capitalised words ("U.S", "Kim Jong Un", "Bank of England"); in a question,
# not its first word; a possessive 's stays out ("Kim's" -> "Kim")
_NAME = re.compile(r"(?<![\w'’.])[A-Z][\w\-]*(?:\.[A-Z][\w\-]*)*(?: (?:(?:of|the|de|du|la|von|van) )*[A-Z][\w\-]*(?:\.[A-Z][\w\-]*)*)*")


def capitalised_runs(text: str, inside_only: bool) -> list[tuple[int, int]]:
    """Capitalised runs of ``text``; with ``inside_only``, only those a word or comma precedes,
    so that a capital that merely starts a sentence ("Both", "The") is not taken for a name."""
    out = []
    for m in _NAME.finditer(text):
        before = text[:m.start()].rstrip(" ")
        if not before or (inside_only and not (before[-1].isalnum() or before[-1] == ",")):
            continue
        out.append(m.span())
    return out


def question_names(question: str) -> list[tuple[int, int]]:
    """Where the names sit in a question: capitalised runs past its first word, their possessive
    ``'s`` left out (``"What did Kim's sister say?"`` -> ``Kim``)."""
    return capitalised_runs(question, inside_only=False)


@dataclass
class QAExample:
    """One question about one context, with every gold answer (empty when unanswerable)."""

    id: str
    title: str
    context: str
    question: str
    answers: list[str] = field(default_factory=list)
    answer_starts: list[int] = field(default_factory=list)


def read_squad(path: str | Path) -> list[QAExample]:
    """Read a SQuAD v1.1/v2.0 file (``.json`` or a ``.zip`` holding one) into examples.

    Raises:
        ValueError: the file is not SQuAD-shaped.
    """
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".json"))
            raw = json.loads(zf.read(name).decode("utf-8"))
    else:
        raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or "data" not in raw:
        raise ValueError(f"{path} is not a SQuAD file: no top-level 'data' list")
    out: list[QAExample] = []
    for article in raw["data"]:
        title = article.get("title", "")
        for para in article["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                out.append(QAExample(
                    id=str(qa["id"]), title=title, context=ctx, question=qa["question"],
                    answers=[a["text"] for a in answers],
                    answer_starts=[int(a["answer_start"]) for a in answers],
                ))
    return out


def join_articles(examples: list[QAExample], sep: str = "\n\n") -> list[QAExample]:
    """The same questions, each asked of its whole article: the distinct paragraphs of its title
    in order, joined by ``sep``, with answer offsets moved to match. This is how the product is
    used (a whole article read in several windows), so it is the set to choose whole-article
    settings on (``qa.window_prior``)."""
    paras = paragraphs_by_title(examples)
    docs: dict[str, str] = {}
    shift: dict[tuple[str, str], int] = {}
    for title, ps in paras.items():
        docs[title], starts = _join(ps, sep)
        shift.update({(title, p): pos for p, pos in zip(ps, starts)})
    return [QAExample(e.id, e.title, docs[e.title], e.question, list(e.answers),
                      [a + shift[(e.title, e.context)] for a in e.answer_starts]) for e in examples]


def long_articles(examples: list[QAExample], words: int = 20_000, seed: int = 0,
                  sep: str = "\n\n") -> list[QAExample]:
    """The same questions, each asked of a long document of about ``words`` words: its whole
    article (``join_articles``) among other articles of the set, in an order and at a place drawn
    per title from ``seed``, answer offsets moved. Every question of a title shares its document.
    This is what a user's long upload looks like to the engine (the answer in one stretch, most
    windows about something else), so it is the set to choose a reading budget on
    (``qa.max_windows``)."""
    whole = join_articles(examples)
    docs: dict[str, str] = {}
    for e in whole:
        docs.setdefault(e.title, e.context)
    titles = sorted(docs)
    placed: dict[str, tuple[str, int]] = {}
    for title in titles:
        rng = random.Random(f"{seed}:{title}")
        others = [t for t in titles if t != title]
        rng.shuffle(others)
        parts, total = [title], len(docs[title].split())
        for t in others:
            if total >= words:
                break
            parts.append(t)
            total += len(docs[t].split())
        rng.shuffle(parts)
        text, starts = _join([docs[t] for t in parts], sep)
        placed[title] = (text, starts[parts.index(title)])
    return [QAExample(e.id, e.title, placed[e.title][0], e.question, list(e.answers),
                      [a + placed[e.title][1] for a in e.answer_starts]) for e in whole]


def with_distractors(examples: list[QAExample], k: int, seed: int, sep: str = "\n\n") -> list[QAExample]:
    """The same questions, each asked of its paragraph joined with ``k`` other paragraphs of the
    same article (fewer when the article has fewer), in random order, answer offsets moved. These
    are the training documents of shared normalisation (training.train_qa ``--distractors``): the
    other paragraphs are on the same subject, so they hold the near misses a whole article holds."""
    rng = random.Random(seed)
    paras = paragraphs_by_title(examples)
    out = []
    for e in examples:
        others = [p for p in paras[e.title] if p != e.context]
        doc = rng.sample(others, min(k, len(others))) + [e.context]
        rng.shuffle(doc)
        text, starts = _join(doc, sep)
        at = starts[doc.index(e.context)]
        out.append(QAExample(e.id, e.title, text, e.question, list(e.answers), [a + at for a in e.answer_starts]))
    return out


def erase_answers(example: QAExample, min_sentences: int = 2) -> QAExample | None:
    """The question asked of its paragraph with every sentence that holds a gold answer removed:
    an unanswerable example whose text still holds the near misses (same subject, same kind of
    span), unlike another article's paragraph. A sentence that repeats a gold answer's words
    elsewhere goes too. None when fewer than ``min_sentences`` are left.
    These teach the reader to refuse ("How much did the limo cost?" of an article that names the
    limo but not its price: training.train_qa ``--erased-frac``)."""
    spans = [(a0, a0 + len(a)) for a, a0 in zip(example.answers, example.answer_starts)]
    golds = {f" {normalize_answer(a)} " for a in example.answers} - {"  "}

    def holds_answer(s) -> bool:           # at a gold offset, or the same words elsewhere
        return (any(s.start < end and start < s.end for start, end in spans)
                or any(g in f" {normalize_answer(s.text(example.context))} " for g in golds))

    kept = [s for s in split_sentences(example.context) if not holds_answer(s)]
    if len(kept) < min_sentences or not spans:
        return None
    text = " ".join(s.text(example.context) for s in kept)
    return QAExample(example.id + "-erased", example.title, text, example.question)


# words that join names whose order does not matter ("Kim and Putin", "A, B, and C"): swapping
# names with nothing else between them asks the same thing
_LIST_WORDS = {"and", "or", "nor", "vs", "versus", "with", "the", "&"}


def _joined_by_more_than_a_list(text: str, x: tuple[int, int], y: tuple[int, int],
                                names: list[tuple[int, int]]) -> bool:
    """Whether a word other than a list's ("and", "or", a comma) stands between names ``x`` and
    ``y`` of ``text``, names between them not counted."""
    between = text[x[1]:y[0]]
    for s, e in sorted(names, reverse=True):
        if x[1] <= s and e <= y[0]:
            between = between[:s - x[1]] + " " + between[e - x[1]:]
    return any(w.lower() not in _LIST_WORDS for w in re.findall(r"[\w&]+", between))


def swap_names(example: QAExample, rng: random.Random) -> QAExample | None:
    """An unanswerable near miss made by changing who the question is about, asked of the same
    paragraph: SQuAD 2.0's "entity swap" kind, which a reader that matches words without roles
    answers anyway ("What did Kim give Putin?" answered from "Putin gave Kim a limo").

    The question's names that stand in the sentence holding the answer (and not in the answer
    itself) are changed: two of them trade places when the question joins them by more than
    "and"/"or" (swapping "Kim and Putin" asks the same thing); otherwise one of them is replaced by
    another name of the paragraph that the answer's sentence does not hold ("What did Vietnam
    give Putin?"). None when neither applies. The result is labelled "no answer"; now and then a
    paragraph does answer the changed question elsewhere (the label is then wrong, the price of
    making these without a person: the ``xquad-swapped`` set counts on it only in aggregate)."""
    if not example.answers:
        return None
    a0 = example.answer_starts[0]
    sentence = next((s for s in split_sentences(example.context) if s.start <= a0 < s.end), None)
    if sentence is None:
        return None
    said = sentence.text(example.context)
    answer = example.answers[0]
    q = example.question
    every = question_names(q)
    names = [(s, e) for s, e in every if q[s:e] in said and q[s:e] not in answer]
    names = [n for i, n in enumerate(names) if q[n[0]:n[1]] not in {q[s:e] for s, e in names[:i]}]
    swappable = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]
                 if _joined_by_more_than_a_list(q, x, y, every)]
    if swappable:
        (s1, e1), (s2, e2) = rng.choice(swappable)
        changed = q[:s1] + q[s2:e2] + q[e1:s2] + q[s1:e1] + q[e2:]
    else:
        if not names:
            return None
        s1, e1 = rng.choice(names)
        old = q[s1:e1].lower()
        others = sorted({example.context[s:e] for s, e in capitalised_runs(example.context, inside_only=True)})
        others = [o for o in others if o.lower() not in said.lower() and o not in q and o not in answer
                  and old not in o.lower() and o.lower() not in old]
        if not others:
            return None
        changed = q[:s1] + rng.choice(others) + q[e1:]
    return QAExample(example.id + "-swapped", example.title, example.context, changed)


def swapped_questions(examples: list[QAExample], seed: int = 0) -> list[QAExample]:
    """``swap_names`` of each example that it can change, drawn with ``seed``: unanswerable near
    misses for evaluation (eval set ``xquad-swapped``)."""
    rng = random.Random(seed)
    return [s for s in (swap_names(e, rng) for e in examples) if s is not None]


def foreign_questions(examples: list[QAExample], seed: int = 13) -> list[QAExample]:
    """Each question asked of a context of another article, drawn with ``seed``: unanswerable. Of
    paragraphs, a paragraph of another article; of whole articles (``join_articles``), another
    whole article (the calibrator's unanswerable rows, ``training.tune``; eval set
    ``xquad-foreign``)."""
    rng = random.Random(seed)
    ctx_by_title = paragraphs_by_title(examples)
    titles = sorted(ctx_by_title)
    out = []
    for e in examples:
        other = rng.choice([t for t in titles if t != e.title] or titles)
        out.append(QAExample(e.id + "-neg", other, rng.choice(ctx_by_title[other]), e.question))
    return out


def paragraphs_by_title(examples: list[QAExample]) -> dict[str, list[str]]:
    """Each article's distinct paragraphs, in order of first appearance."""
    paras: dict[str, list[str]] = {}
    for e in examples:
        if e.context not in paras.setdefault(e.title, []):
            paras[e.title].append(e.context)
    return paras


def _join(paras: list[str], sep: str) -> tuple[str, list[int]]:
    """The paragraphs joined by ``sep``, and where each one starts."""
    starts, pos = [], 0
    for p in paras:
        starts.append(pos)
        pos += len(p) + len(sep)
    return sep.join(paras), starts


# --- the official SQuAD v1.1/v2.0 answer normalisation and scores --------------------------------
import re as _re
import string as _string
from collections import Counter as _Counter

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "′": "'",
                         "–": "-", "—": "-"})
_PUNCT = set(_string.punctuation)
_ARTICLES = _re.compile(r"\b(a|an|the)\b", _re.UNICODE)


def normalize_answer(s: str) -> str:
    """The official SQuAD normalisation (lower case, drop punctuation, articles, extra white space),
    after mapping curly quotes and dashes to ASCII so that the seed article's typography does not
    count as a difference."""
    s = s.translate(_QUOTES).lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str | None, gold: list[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer. With no gold answers
    (unanswerable), 1.0 only for no prediction."""
    if not gold:
        return float(not prediction)
    if not prediction:
        return 0.0
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in gold))


def _f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = _Counter(p) & _Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str | None, gold: list[str]) -> float:
    """Token F1, best over the gold answers (SQuAD v2 convention for unanswerable questions)."""
    if not gold:
        return float(not prediction)
    if not prediction:
        return 0.0
    return max(_f1(prediction, g) for g in gold)
