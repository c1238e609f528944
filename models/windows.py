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
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    offsets: list[np.ndarray]
    context_mask: list[np.ndarray]
    sample: np.ndarray

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
