"""Question + article -> overlapping token windows, shared by the QA engine and its training.

One function builds the windows so that training sees exactly what inference sees: the question
first, the article second, the article cut into windows of ``max_seq_len`` tokens that overlap by
``doc_stride`` tokens (the names the transformers 4 QA pipeline used), with character offsets
into the original article for every article token.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Windows:
    """Tokenized windows of one or more (question, article) pairs.

    Attributes:
        input_ids: one list of token ids per window (unpadded).
        token_type_ids: segment ids per window, or None for models without them.
        offsets: (start, end) character offsets per token; (0, 0) for special tokens.
        context_mask: per window, a bool array that is True on article tokens.
        sample: per window, the index of the (question, article) pair it belongs to.
        relevance: per window, its BM25 match with its question over the best window's of the
            same question, in [0, 1] (for the window prior, models.qa), or None when not scored.
        of_article: per window, how many windows its question has over the whole article, set
            where the windows are built and kept by ``select_windows``, so it still counts the
            windows left unread (``qa.max_windows``); None for windows built elsewhere.
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    offsets: list[np.ndarray]
    context_mask: list[np.ndarray]
    sample: np.ndarray
    relevance: np.ndarray | None = None
    of_article: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_windows(tokenizer, questions: list[str], contexts: list[str], max_seq_len: int,
                   doc_stride: int, max_question_len: int = 64) -> Windows:
    """Tokenize pairs into overlapping windows over the context.

    Args:
        tokenizer: a fast (Rust-backed) tokenizer; offsets need it.
        questions, contexts: parallel lists.
        max_seq_len: tokens per window, question and special tokens included.
        doc_stride: tokens shared by consecutive windows.
        max_question_len: longer questions are cut to this many tokens so that article room stays.
    Returns:
        Windows, in pair order, each pair's windows in article order.
    """
    if len(questions) != len(contexts):
        raise ValueError("questions and contexts differ in length")
    questions = [_clip_question(tokenizer, q, max_question_len) for q in questions]
    enc = tokenizer(
        questions,
        contexts,
        truncation="only_second",
        max_length=max_seq_len,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    n = len(enc["input_ids"])
    offsets, masks = [], []
    for i in range(n):
        seq_ids = enc.sequence_ids(i)
        mask = np.array([s == 1 for s in seq_ids], dtype=bool)
        off = np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
        off[~mask] = 0
        offsets.append(off)
        masks.append(mask)
    sample = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
    return Windows(
        input_ids=enc["input_ids"],
        token_type_ids=enc.get("token_type_ids"),
        offsets=offsets,
        context_mask=masks,
        sample=sample,
    )


def _clip_question(tokenizer, question: str, max_tokens: int) -> str:
    """Cut a question to ``max_tokens`` tokens on a token boundary (by characters, so it stays text)."""
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= max_tokens:
        return question
    return question[: enc["offset_mapping"][max_tokens - 1][1]]


def pad_batch(windows: Windows, index: list[int] | np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
    """Pad the chosen windows to the longest among them (dynamic padding)."""
    rows = [windows.input_ids[i] for i in index]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    att = np.zeros((len(rows), width), dtype=np.int64)
    for j, r in enumerate(rows):
        ids[j, : len(r)] = r
        att[j, : len(r)] = 1
    out = {"input_ids": ids, "attention_mask": att}
    if windows.token_type_ids is not None:
        tt = np.zeros((len(rows), width), dtype=np.int64)
        for j, i in enumerate(index):
            t = windows.token_type_ids[i]
            tt[j, : len(t)] = t
        out["token_type_ids"] = tt
    return out


@dataclass
class PairTemplate:
    """Where a tokenizer puts its special tokens around a (question, article) pair.

    Read once from the tokenizer itself (``from_tokenizer``), so it holds for BERT
    (``[CLS] q [SEP] c [SEP]``), RoBERTa (``<s> q </s></s> c </s>``) and others alike.
    Each part is a list of (token id, token type id) pairs.
    """

    prefix: list[tuple[int, int]]
    middle: list[tuple[int, int]]
    suffix: list[tuple[int, int]]
    question_type: int
    context_type: int
    has_types: bool

    @property
    def specials(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "PairTemplate":
        enc = tokenizer("a", "b")
        ids = enc["input_ids"]
        types = enc.get("token_type_ids") or [0] * len(ids)
        parts: list[list[tuple[int, int]]] = [[], [], []]
        q_type = c_type = 0
        part = 0
        for i, seq in enumerate(enc.sequence_ids()):
            if seq is None:
                parts[part].append((ids[i], types[i]))
            elif seq == 0:
                part, q_type = 1, types[i]
            else:
                part, c_type = 2, types[i]
        return cls(parts[0], parts[1], parts[2], q_type, c_type, "token_type_ids" in enc)


@dataclass
class ArticleTokens:
    """An article tokenized once (no special tokens), reused for every question about it."""

    ids: np.ndarray        # (n,) token ids
    offsets: np.ndarray    # (n, 2) character offsets into the article


def tokenize_article(tokenizer, article: str) -> ArticleTokens:
    """The whole article in tokens with character offsets (windows are cut from it later, so the
    model's own length limit does not apply here)."""
    enc = tokenizer(article, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return ArticleTokens(np.asarray(enc["input_ids"], dtype=np.int64),
                         np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2))


def window_ranges(n_tokens: int, room: int, doc_stride: int) -> list[tuple[int, int]]:
    """Token ranges of the article windows: ``room`` tokens each, consecutive ones sharing
    ``doc_stride`` tokens, the last ending at the article's end. The same cut as the Rust
    tokenizer's truncation with overflow, so windows match ``encode_windows`` token for token."""
    if room <= doc_stride:
        raise ValueError(f"doc_stride ({doc_stride}) must be below the article room per window ({room})")
    ranges = []
    for start in range(0, max(n_tokens, 1), room - doc_stride):
        stop = min(start + room, n_tokens)
        ranges.append((start, stop))
        if stop == n_tokens:
            break
    return ranges


def question_ids(tokenizer, questions: list[str], max_question_len: int) -> list[list[int]]:
    """Token ids of each question (no special tokens), cut to ``max_question_len``."""
    enc = tokenizer(questions, add_special_tokens=False)
    return [ids[:max_question_len] for ids in enc["input_ids"]]


def build_windows(template: PairTemplate, questions: list[list[int]], article: ArticleTokens,
                  max_seq_len: int, doc_stride: int) -> Windows:
    """Windows for each question over an already tokenized article (no tokenizer call).

    Args:
        template: the tokenizer's pair layout.
        questions: token ids per question (``question_ids``).
        article: the article's tokens (``tokenize_article``).
        max_seq_len, doc_stride: as in ``encode_windows``.
    Returns:
        Windows, in question order, each question's windows in article order.
    """
    ids_out, types_out, offs_out, masks_out, sample = [], [], [], [], []
    pre_ids = [t for t, _ in template.prefix]
    n = len(article.ids)
    for qi, q in enumerate(questions):
        head_ids = pre_ids + list(q) + [t for t, _ in template.middle]
        head_types = ([t for _, t in template.prefix] + [template.question_type] * len(q)
                      + [t for _, t in template.middle])
        tail_ids = [t for t, _ in template.suffix]
        tail_types = [t for _, t in template.suffix]
        room = max_seq_len - len(q) - template.specials
        for a, b in window_ranges(n, room, doc_stride):
            k = b - a
            ids_out.append(head_ids + article.ids[a:b].tolist() + tail_ids)
            types_out.append(head_types + [template.context_type] * k + tail_types)
            off = np.zeros((len(head_ids) + k + len(tail_ids), 2), dtype=np.int64)
            off[len(head_ids):len(head_ids) + k] = article.offsets[a:b]
            mask = np.zeros(len(off), dtype=bool)
            mask[len(head_ids):len(head_ids) + k] = True
            offs_out.append(off)
            masks_out.append(mask)
            sample.append(qi)
    sample = np.asarray(sample, dtype=np.int64)
    return Windows(ids_out, types_out if template.has_types else None, offs_out, masks_out, sample,
                   of_article=np.bincount(sample)[sample])


def concat_windows(parts: list[Windows]) -> tuple[Windows, list[int]]:
    """Several requests' windows as one batch: (windows, offsets) where request ``i``'s question
    ``q`` is question ``offsets[i] + q`` of the result. Relevance and ``of_article`` are kept only
    if every part has them."""
    offsets, total = [], 0
    for p in parts:
        offsets.append(total)
        total += int(p.sample.max()) + 1 if len(p) else 0
    rel = [p.relevance for p in parts]
    whole = [p.of_article for p in parts]
    return Windows(
        input_ids=[x for p in parts for x in p.input_ids],
        token_type_ids=None if any(p.token_type_ids is None for p in parts)
        else [x for p in parts for x in p.token_type_ids],
        offsets=[x for p in parts for x in p.offsets],
        context_mask=[x for p in parts for x in p.context_mask],
        sample=np.concatenate([p.sample + o for p, o in zip(parts, offsets)]) if parts else np.zeros(0, np.int64),
        relevance=np.concatenate(rel) if rel and all(r is not None for r in rel) else None,
        of_article=np.concatenate(whole) if whole and all(w is not None for w in whole) else None,
    ), offsets


def select_windows(windows: Windows, keep: np.ndarray | None = None,
                   relevance: np.ndarray | None = None) -> Windows:
    """The windows where ``keep`` is True (question-aware window selection; None keeps all),
    with ``relevance`` (one value per window of ``windows``) attached, or theirs kept."""
    idx = np.arange(len(windows)) if keep is None else np.flatnonzero(keep)
    rel = windows.relevance if relevance is None else relevance
    whole = windows.of_article
    return Windows([windows.input_ids[i] for i in idx],
                   None if windows.token_type_ids is None else [windows.token_type_ids[i] for i in idx],
                   [windows.offsets[i] for i in idx], [windows.context_mask[i] for i in idx],
                   windows.sample[idx], None if rel is None else rel[idx], None if whole is None else whole[idx])
