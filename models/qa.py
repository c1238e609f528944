"""Extractive question answering over AutoModelForQuestionAnswering (transformers 5 has no QA
pipeline): windows -> batched forward -> span search, in the old pipeline's three steps.

Inputs: an article (str) and questions (list[str]). Outputs: one result dict per question:
``answer`` (str or None when not in the article), ``score`` in [0, 1] (the ranking score: the
span's probability under the profile's normalisation and priors; the no-answer probability when
there is no answer), ``confidence`` (what to show a person: the answer's share of the score of
every span decoded for the question, so priors that scale all scores down do not make a clear
answer look unsure; the no-answer probability when there is no answer), ``start``/``end``
character offsets into the article, ``sentence``/``sentence_start``, and ``answers`` (candidates,
best first, each with its ``score`` and ``confidence`` and ``selected`` True when it is part of
the answer, e.g. each item of a list answer).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from models.loading import ModelLoadError, load_pretrained
from models.profiles import QASettings
from models.spans import (Candidate, article_norm_factors, has_answer, merge_candidates, select_list,
                          to_candidates, window_spans)
from models.text import Sentence, sentence_at, split_sentences
from models.window_select import WordIndex, best_windows, bm25_scores
from models.windows import (ArticleTokens, PairTemplate, Windows, build_windows, pad_batch, question_ids,
                            select_windows, tokenize_article)

ARTICLE_CACHE = 8   # recently seen articles whose tokens are kept for the next question
# spans kept per window before merging: enough that the window prior, which reorders spans across
# windows, and the removal of nested duplicates still leave top_k distinct candidates
SPANS_PER_WINDOW = 20


class ExtractiveReader:
    """Answers questions with spans of the article. Call ``warm_up()`` before ``run()``."""

    def __init__(self, settings: QASettings, model: str | None, device: str = "cpu"):
        self.settings = settings
        self.model_name = model
        self.device = device
        self.tokenizer = None
        self.model = None
        self.template: PairTemplate | None = None
        self._articles: OrderedDict[str, tuple[ArticleTokens, WordIndex | None]] = OrderedDict()

    def warm_up(self) -> None:
        """Load tokenizer and weights (once; later calls do nothing)."""
        if self.model is not None:
            return
        if not self.model_name:
            raise ModelLoadError("This profile has no QA model (qa.model is empty), so it cannot answer "
                                 "questions; choose a profile with one.")
        if self.settings.quantize not in ("none", "int8"):
            raise ModelLoadError(f"qa.quantize must be 'none' or 'int8', not {self.settings.quantize!r}.")
        tokenizer, model = load_pretrained(self.model_name, "qa", self.device)
        if self.settings.quantize == "int8" and self.device == "cpu":
            model = quantize_int8(model)
        self.template = PairTemplate.from_tokenizer(tokenizer)
        self.tokenizer, self.model = tokenizer, model

    def run(self, article: str, questions: list[str], top_k: int | None = None) -> list[dict]:
        """Answer every question about ``article``; questions are batched together.

        Args:
            article: validated article text.
            questions: validated, non-empty questions.
            top_k: candidates per result (default: the profile's ``qa.top_k``).
        Returns:
            One result dict per question, in order.
        """
        if self.model is None:
            raise RuntimeError("ExtractiveReader.run() called before warm_up().")
        top_k = top_k or self.settings.top_k
        windows = self.preprocess(article, questions)
        start, end = self.forward(windows)
        sentences = split_sentences(article)
        return [self.postprocess(article, sentences, windows, start, end, q, top_k)
                for q in range(len(questions))]

    def preprocess(self, article: str, questions: list[str]) -> Windows:
        """Windows of every question over the article, which is tokenized once (and kept for the
        next few calls). Each window is scored against its question with BM25 when the profile
        asks for it: with ``max_windows`` only each question's best windows are read, and with
        ``window_prior`` the spans of a window whose BM25 score is r times its question's best
        have their scores multiplied by exp(-window_prior * (1 - r)), so that on a long article
        a confident span in a window unrelated to the question does not beat the right one."""
        s = self.settings
        tokens, index = self.article_tokens(article)
        windows = build_windows(self.template, question_ids(self.tokenizer, questions, s.max_question_len),
                                tokens, s.max_seq_len, s.doc_stride)
        if not (s.max_windows or s.window_prior):
            return windows
        spans = np.array([[o[m][0, 0], o[m][-1, 1]] if m.any() else [0, 0]
                          for o, m in zip(windows.offsets, windows.context_mask)], dtype=np.int64)
        keep = np.zeros(len(windows), dtype=bool)
        relevance = np.ones(len(windows))      # BM25 score / the best of the same question's windows
        for q, question in enumerate(questions):
            ws = np.flatnonzero(windows.sample == q)
            scores = bm25_scores(index, spans[ws], question)
            if scores.max() > 0:
                relevance[ws] = scores / scores.max()
            keep[ws[best_windows(scores, s.max_windows)]] = True
        windows.relevance = relevance
        return select_windows(windows, keep) if s.max_windows else windows

    def article_tokens(self, article: str) -> tuple[ArticleTokens, WordIndex | None]:
        """The article's tokens (and word index when windows are selected), from the cache."""
        hit = self._articles.get(article)
        if hit is None:
            hit = (tokenize_article(self.tokenizer, article),
                   WordIndex.build(article) if self.settings.max_windows or self.settings.window_prior
                   else None)
            self._articles[article] = hit
            while len(self._articles) > ARTICLE_CACHE:
                self._articles.popitem(last=False)
        else:
            self._articles.move_to_end(article)
        return hit

    def forward(self, windows: Windows) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Start and end logits of every window, computed in length-sorted batches with padding
        only to the longest window of each batch."""
        import torch

        order = np.argsort([-len(x) for x in windows.input_ids], kind="stable")
        start: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        end: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        pad = self.tokenizer.pad_token_id or 0
        names = set(self.tokenizer.model_input_names)
        bs = self.settings.batch_size
        with torch.inference_mode():
            for b in range(0, len(order), bs):
                idx = order[b:b + bs]
                enc = {k: torch.from_numpy(v).to(self.device)
                       for k, v in pad_batch(windows, idx, pad).items() if k in names}
                out = self.model(**enc)
                sl = out.start_logits.float().cpu().numpy()
                el = out.end_logits.float().cpu().numpy()
                for j, w in enumerate(idx):
                    n = len(windows.input_ids[w])
                    start[w], end[w] = sl[j, :n], el[j, :n]
        return start, end

    def postprocess(self, article: str, sentences: list[Sentence], windows: Windows,
                    start: list[np.ndarray], end: list[np.ndarray], q: int, top_k: int) -> dict:
        """Span search over all windows of question ``q``, merged into one result."""
        s = self.settings
        ws = np.flatnonzero(windows.sample == q)
        width = max(len(start[w]) for w in ws)
        sl = np.full((len(ws), width), -1e4, dtype=np.float32)
        el = np.full_like(sl, -1e4)
        mask = np.zeros((len(ws), width), dtype=bool)
        for r, w in enumerate(ws):
            n = len(start[w])
            sl[r, :n], el[r, :n], mask[r, :n] = start[w], end[w], windows.context_mask[w]
        top_n = max(top_k, s.max_list, SPANS_PER_WINDOW)
        cands: list[Candidate] = []
        chunk = max(1, 4_000_000 // (width * width))     # bounds the (windows, T, T) score array
        for c in range(0, len(ws), chunk):
            sp, sc, nl = window_spans(sl[c:c + chunk], el[c:c + chunk], mask[c:c + chunk],
                                      s.max_answer_len, top_n, s.length_penalty)
            cands += to_candidates(article, sp, sc, nl, windows.offsets, list(ws[c:c + chunk]))
        # ranking only: window_score, and so the no-answer decision, stay as they are
        factor = np.ones(len(windows))
        if s.span_norm == "article":
            factor[ws] = article_norm_factors(sl, el, mask)
        if s.window_prior and windows.relevance is not None:
            factor *= np.exp(-s.window_prior * (1.0 - windows.relevance))
        for cand in cands:
            cand.score *= float(factor[cand.window])
        mass = sum(c.score for c in cands)
        cands = merge_candidates(cands, article, max(top_k, s.max_list))
        best = cands[0] if cands else None
        answered = has_answer(best, s.null_threshold)
        chosen = [c for c in select_list(cands, s.list_threshold, s.max_list)
                  if has_answer(c, s.null_threshold)] if answered else []
        chosen_ids = {id(c) for c in chosen}
        shown = cands[:max(top_k, len(chosen))]
        answers = [self._as_dict(article, sentences, c, id(c) in chosen_ids, mass) for c in shown]
        null = float(best.null) if best else 1.0
        result = {"answer": None, "score": null, "confidence": null, "start": None, "end": None,
                  "sentence": None, "sentence_start": None, "answers": answers, "windows": int(len(ws)),
                  "no_answer_score": null}
        if answered:
            top = answers[0]
            result.update({k: top[k] for k in ("answer", "score", "confidence", "start", "end", "sentence",
                                               "sentence_start")})
        return result

    @staticmethod
    def _as_dict(article: str, sentences: list[Sentence], c: Candidate, selected: bool, mass: float) -> dict:
        sent = sentence_at(sentences, c.start)
        return {"answer": article[c.start:c.end], "score": round(c.score, 6),
                "confidence": round(min(1.0, c.score / mass), 6) if mass > 0 else 0.0, "start": c.start,
                "end": c.end, "selected": selected,
                "sentence": sent.text(article) if sent else None,
                "sentence_start": sent.start if sent else None}


def quantize_int8(model):
    """Dynamic int8 quantization of the linear layers (weights int8, activations quantized on the
    fly): about 1.5x faster matrix multiplies on AVX2 CPUs, a quarter of the weight memory."""
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch points users at torchao; this API still works
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
