"""A stronger reader's start/end distributions as soft targets for a smaller one (distillation).

The teacher (the MPNet reader) and the student (MiniLM) have different tokenizers and different
special tokens, so the teacher cannot score the student's windows token for token. Instead it
reads the same characters: for each student window, the question and the article text the window
covers (widened to whole words), tokenized the teacher's way. Its logits are then carried back to
the student's tokens by character offsets: a student token gets the teacher's start logit of the
teacher token that starts where it starts, and the end logit of the one that ends where it ends
(no such token: the student token gets no target mass). [CLS] (the no-answer choice) takes the
teacher's first token, where both put it. The loss is the KL divergence of the student's softened
distributions from the teacher's, per window, as in DistilBERT's SQuAD recipe (Sanh et al. 2019).
"""
from __future__ import annotations

import numpy as np

from models.windows import Windows, encode_windows, pad_batch
from models.spans import CLS_INDEX

NO_TARGET = float("-inf")


def window_chars(offsets: np.ndarray, context_mask: np.ndarray, context: str) -> tuple[int, int]:
    """The article characters a window covers, widened to whole words (a window may start or end
    inside a word, which the teacher would otherwise tokenize differently). (0, 0) if none."""
    idx = np.flatnonzero(context_mask)
    if len(idx) == 0:
        return 0, 0
    start, end = int(offsets[idx[0], 0]), int(offsets[idx[-1], 1])
    while start > 0 and not context[start - 1].isspace():
        start -= 1
    while end < len(context) and not context[end].isspace():
        end += 1
    return start, end


def carry_logits(student_offsets: np.ndarray, student_mask: np.ndarray,
                 teacher_offsets: np.ndarray, teacher_mask: np.ndarray,
                 teacher_start: np.ndarray, teacher_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's start and end logits on the student's tokens, matched by character offsets.

    Args:
        student_offsets, teacher_offsets: (tokens, 2) article character offsets of each side's tokens.
        student_mask, teacher_mask: True on article tokens.
        teacher_start, teacher_end: the teacher's logits over its tokens ([CLS] first).
    Returns:
        (start, end), each (student tokens,) float32: [CLS] gets the teacher's [CLS] logit, an
        article token the teacher's logit where a teacher token starts (ends) at the same
        character, every other position ``NO_TARGET`` (-inf: no mass in the target).
    """
    n = len(student_offsets)
    start = np.full(n, NO_TARGET, dtype=np.float32)
    end = np.full(n, NO_TARGET, dtype=np.float32)
    start[CLS_INDEX] = teacher_start[CLS_INDEX]
    end[CLS_INDEX] = teacher_end[CLS_INDEX]
    t_idx = np.flatnonzero(teacher_mask)
    by_start = {int(teacher_offsets[j, 0]): j for j in t_idx[::-1]}   # first token wins
    by_end = {int(teacher_offsets[j, 1]): j for j in t_idx}            # last token wins
    for i in np.flatnonzero(student_mask):
        j = by_start.get(int(student_offsets[i, 0]))
        if j is not None:
            start[i] = teacher_start[j]
        j = by_end.get(int(student_offsets[i, 1]))
        if j is not None:
            end[i] = teacher_end[j]
    return start, end


def teacher_windows(tokenizer, windows: Windows, rows: list[int], questions: list[str],
                    contexts: list[str], max_seq_len: int = 512) -> Windows:
    """The teacher's tokens for the chosen student windows: each window's question with the
    article text it covers, one teacher window each, offsets in the whole article's characters."""
    qs, spans, texts = [], [], []
    for w in rows:
        s = int(windows.sample[w])
        a, b = window_chars(windows.offsets[w], windows.context_mask[w], contexts[s])
        qs.append(questions[s])
        spans.append(a)
        texts.append(contexts[s][a:b])
    enc = encode_windows(tokenizer, qs, texts, max_seq_len, doc_stride=0)
    # text longer than max_seq_len would spill into a second window: keep each pair's first
    first = np.flatnonzero(np.r_[True, enc.sample[1:] != enc.sample[:-1]])
    offsets = []
    for k in first:
        off = enc.offsets[k].copy()
        off[enc.context_mask[k]] += spans[int(enc.sample[k])]
        offsets.append(off)
    return Windows(input_ids=[enc.input_ids[k] for k in first],
                   token_type_ids=None if enc.token_type_ids is None else [enc.token_type_ids[k] for k in first],
                   offsets=offsets, context_mask=[enc.context_mask[k] for k in first],
                   sample=np.asarray(rows, dtype=np.int64))


class Teacher:
    """A trained reader that gives soft targets for student windows (``targets``)."""

    def __init__(self, model_ref: str, precision: str = "fp32"):
        self.model_ref = model_ref
        self.precision = precision
        self.tokenizer = None
        self.model = None

    def warm_up(self) -> None:
        from models.loading import load_pretrained
        self.tokenizer, self.model = load_pretrained(self.model_ref, "qa")   # in eval mode

    def targets(self, windows: Windows, rows: list[int], questions: list[str], contexts: list[str],
                width: int):
        """(start, end) target logits, each a (len(rows), width) float32 tensor on the student's
        tokens (``carry_logits``; padding and unmatched positions -inf)."""
        import torch
        if self.model is None:
            self.warm_up()
        tw = teacher_windows(self.tokenizer, windows, rows, questions, contexts)
        enc = {k: torch.from_numpy(v) for k, v in
               pad_batch(tw, list(range(len(tw))), self.tokenizer.pad_token_id or 0).items()}
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            out = self.model(**enc)
        t_start = out.start_logits.float().numpy()
        t_end = out.end_logits.float().numpy()
        start = np.full((len(rows), width), NO_TARGET, dtype=np.float32)
        end = np.full((len(rows), width), NO_TARGET, dtype=np.float32)
        for r, w in enumerate(rows):
            n = len(windows.input_ids[w])
            start[r, :n], end[r, :n] = carry_logits(
                windows.offsets[w], windows.context_mask[w], tw.offsets[r], tw.context_mask[r],
                t_start[r], t_end[r])
        return torch.from_numpy(start), torch.from_numpy(end)


def distill_loss(student_start, student_end, teacher_start, teacher_end, temperature: float = 2.0,
                 weight=None):
    """KL(teacher || student) of the start and end distributions softened by ``temperature``,
    halved, times temperature squared (so its gradients keep the hard loss's scale), averaged
    over windows (weighted by ``weight``, (batch,), when given: the windows whose own loss
    counts, as for the gold labels). The student's softmax covers only positions where the teacher has mass, so
    padding and tokens with no teacher counterpart are left out of both.

    Args:
        student_start, student_end: (batch, tokens) logits.
        teacher_start, teacher_end: (batch, tokens) target logits, -inf where no target.
    """
    import torch

    def one(s, t):
        valid = torch.isfinite(t)
        s = (s.float() / temperature).masked_fill(~valid, float("-inf"))
        t = t / temperature
        log_p = torch.log_softmax(t, dim=-1)
        log_q = torch.log_softmax(s, dim=-1)
        kl = (log_p.exp() * (log_p - log_q)).masked_fill(~valid, 0.0).sum(-1)
        return kl

    kl = (one(student_start, teacher_start) + one(student_end, teacher_end)) / 2 * temperature ** 2
    if weight is None:
        return kl.mean()
    return (kl * weight).sum() / weight.sum().clamp(min=1e-6)
