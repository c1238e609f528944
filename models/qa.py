"""Extractive question answering over AutoModelForQuestionAnswering (transformers 5 has no QA
pipeline): windows -> batched forward -> span search, in the old pipeline's three steps.

Inputs: an article (str) and questions (list[str]). Outputs: one result dict per question:

- ``answer``: the answer (str), or None when the article does not hold it;
- ``score``: the probability that ``answer`` is right, or, when ``answer`` is None, that the
  article does not hold the answer. Calibrated on the development set when the weights come with
  a calibrator (``calibrated`` True, see models/calibration.py); otherwise the raw span
  probability (and the window's no-answer probability);
- ``span_score``: the span's probability under the profile's span normalisation and priors (what
  ranks candidates); ``share``: its share of the score of every span decoded for the question;
- ``start``/``end``: character offsets into the article; ``sentence``/``sentence_start``;
- ``answers``: candidates, each with the keys above and ``selected`` (True for the spans that
  make up the answer), best first; for a list answer (the list tagger, models/list_tagger.py,
  found several items) its items first, in article order, each scored by the tagger, then the
  other candidates. A candidate's ``score`` never exceeds 1 - the no-answer probability;
- ``no_answer_score``: the probability that the article does not hold the answer; ``windows``:
  how many windows were read for the question, of the ``windows_in_article`` the article was cut
  into for it (fewer when ``qa.max_windows`` left the least related unread); ``calibrated``:
  whether ``score`` is calibrated; ``features``: the best span's calibration features by name
  (models/calibration.py), what a calibrator is fitted on.

The work is split by job: windows (models/windows.py, models/window_select.py), the runtime
(models/runtime.py), span search under the priors (models/span_search.py), the answer decision
(models/answer.py) and the list tagger (models/list_tagger.py); this module reads the article
through the model and chains them.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.answer import (candidate_features, is_list, list_answers, no_answer, result_dict, shown_scores,
                           span_answers, threshold_list)
from models.calibration import Calibrator
from models.list_tagger import ListTagger, decode_tagged_spans, list_or_best, merge_tagged_spans
from models.loading import ModelLoadError
from models.profiles import QASettings
from models.runtime import load_reader_weights, resolve_runtime
from models.sentence_encoder import SentenceEncoder
from models.span_search import question_rows, ranked_candidates
from models.text import Sentence, split_sentences
from models.window_select import WordIndex, budgeted_windows
from models.windows import (ArticleTokens, PairTemplate, Windows, build_windows, concat_windows, pad_batch,
                            question_ids, select_windows, tokenize_article)

ARTICLE_CACHE = 8   # recently seen articles whose tokens are kept for the next question
# windows per forward pass when qa.batch_size is 0: on a CPU a window already fills the cores and
# bigger batches were slower (docs/decisions.md, "Windows per forward pass"); a GPU wants many
CPU_WINDOWS_PER_PASS = 2
GPU_WINDOWS_PER_PASS = 32


def windows_per_pass(batch_size: int, device: str) -> int:
    """``qa.batch_size``, or where it is 0 the measured choice for ``device``."""
    if batch_size:
        return batch_size
    return CPU_WINDOWS_PER_PASS if device == "cpu" else GPU_WINDOWS_PER_PASS


@dataclass(frozen=True)
class WindowParams:
    """How an article is cut into windows for a question (``preprocess``)."""

    max_seq_len: int
    doc_stride: int
    max_question_len: int
    max_windows: int          # read only each question's best windows by BM25; 0 = all
    min_relevance: float      # and only windows matching the question at least this share of the best one
    core_margin: int          # tokens left out at each inner edge of a window when matching for min_relevance
    reread_below: float       # then a question refused or answered below this score is read over its whole budget
    score_windows: bool       # compute each window's BM25 relevance (for the window prior)


@dataclass(frozen=True)
class DecodeParams:
    """How spans are searched, ranked and chosen (``postprocess``)."""

    top_k: int
    max_answer_len: int
    length_penalty: float
    span_norm: str
    window_prior: float
    null_threshold: float
    list_threshold: float
    max_list: int
    calibrator: Calibrator | None = None   # calibrated scores and no-answer decision when present
    sentence_prior: float = 0.0            # spans.sentence_prior_factors; 0 = off
    repeat_penalty: float = 0.0            # spans.repeat_factors; 0 = off


class ExtractiveReader:
    """Answers questions with spans of the article. Call ``warm_up()`` before ``run()``.

    Settings come from the profile (``QASettings``, which already holds the values saved beside
    the weights, see ``models.profiles``); ``sanitize()`` turns them into the parameters of
    ``preprocess`` and ``postprocess``, which read nothing else, so a tuning run can decode the
    same logits under many settings (``read``). A request may set only ``top_k``.

    With a ``sentence_encoder`` (the profile's ``qa.sentence_encoder``), each candidate is also
    weighed by how much its sentence is like the question (``qa.sentence_prior``,
    ``question_similarity``).
    """

    def __init__(self, settings: QASettings, model: str | None, device: str = "cpu", dtype: str = "float32",
                 backend: str = "torch", threads: int = 0, sentence_encoder: SentenceEncoder | None = None):
        self.settings = settings
        self.sentence_encoder = sentence_encoder
        self.model_name = model
        self.device = device
        self.dtype = dtype
        self.backend = backend
        self.threads = threads
        self.tokenizer = None
        self.model = None
        self.template: PairTemplate | None = None
        self.list_tagger: ListTagger | None = None
        self.calibrator = Calibrator.from_dict(settings.calibrator) if settings.calibrator else None
        self._articles: OrderedDict[str, tuple[ArticleTokens, WordIndex | None]] = OrderedDict()

    def warm_up(self) -> None:
        """Load tokenizer and weights (once; later calls do nothing)."""
        if self.model is not None:
            return
        if not self.model_name:
            raise ModelLoadError("This profile has no QA model (qa.model is empty), so it cannot answer "
                                 "questions; choose a profile with one.")
        if self.settings.sentence_prior and self.sentence_encoder is None:
            raise ModelLoadError("qa.sentence_prior weighs answers by their sentence's likeness to the question, "
                                 "which needs a sentence encoder: set qa.sentence_encoder, or qa.sentence_prior: 0.")
        backend, dtype = self.runtime_choice()
        tokenizer, model = load_reader_weights(self.model_name, self.device, backend, dtype, self.threads)
        if self.sentence_encoder is not None:
            self.sentence_encoder.warm_up()
        self.template = PairTemplate.from_tokenizer(tokenizer)
        self.tokenizer, self.model = tokenizer, model
        self.list_tagger = self._load_head(ListTagger, backend) if self.settings.list_tagger else None

    def _load_head(self, kind, backend: str):
        """A head saved beside the reader's weights (``ListTagger``), or None when there is none;
        heads read the encoder's hidden states, which only the torch backend gives. A head with
        encoder layers of its own copies them from this reader's encoder."""
        if backend != "torch" or not Path(self.model_name).is_dir():
            return None
        try:
            return kind.load(self.model_name, getattr(self.model.base_model, "encoder", None))
        except ValueError as e:
            raise ModelLoadError(f"The list tagger beside {self.model_name} cannot be loaded: {e}") from e

    def runtime_choice(self) -> tuple[str, str]:
        """(backend, dtype) this reader runs (``models.runtime.resolve_runtime``)."""
        return resolve_runtime(self.backend, self.dtype, self.device)

    def sanitize(self, **settings) -> tuple[WindowParams, DecodeParams]:
        """The parameters of ``preprocess`` and ``postprocess``: the reader's settings with
        ``settings`` (any ``QASettings`` field; None values are ignored) in place of its own.

        Raises:
            ValueError: a name that is no setting.
        """
        given = {k: v for k, v in settings.items() if v is not None}
        unknown = set(given) - set(vars(self.settings))
        if unknown:
            raise ValueError(f"unknown QA setting(s) {sorted(unknown)}")
        s = replace(self.settings, **given)
        calibrator = self.calibrator if s.calibrator is self.settings.calibrator else (
            Calibrator.from_dict(s.calibrator) if s.calibrator else None)
        return (WindowParams(s.max_seq_len, s.doc_stride, s.max_question_len, s.max_windows,
                             s.min_window_relevance, s.doc_stride // 2 if s.core_relevance else 0, s.reread_below,
                             bool(s.max_windows or s.window_prior or s.min_window_relevance)),
                DecodeParams(s.top_k, s.max_answer_len, s.length_penalty, s.span_norm, s.window_prior,
                             s.null_threshold, s.list_threshold, s.max_list, calibrator, s.sentence_prior,
                             s.repeat_penalty))

    def run(self, article: str, questions: list[str], top_k: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> list[dict]:
        """Answer every question about ``article``; questions are batched together.

        Args:
            article: validated article text.
            questions: validated, non-empty questions.
            top_k: candidates per result (default: the profile's ``qa.top_k``).
            progress: called with (windows read, windows to read) as the model reads.
        Returns:
            One result dict per question, in order.
        """
        return self.read(article, questions, *self.sanitize(top_k=top_k), progress=progress)

    def read(self, article: str, questions: list[str], window_params: WindowParams, decode_params: DecodeParams,
             progress: Callable[[int, int], None] | None = None) -> list[dict]:
        """``run`` under explicit parameters (``sanitize``): for tuning and tests."""
        if self.model is None:
            raise RuntimeError("ExtractiveReader.run() called before warm_up().")
        windows = self.preprocess(article, questions, window_params)
        start, end, hidden = self.forward(windows, progress)
        results = self._decode_request(article, questions, windows, start, end, hidden, 0, decode_params)
        return self._reread_unsure(article, questions, results, window_params, decode_params,
                                    windows, start, end, hidden, 0)

    def run_batch(self, requests: list[tuple[str, list[str], int | None]],
                  progress: list[Callable[[int, int], None] | None] | None = None) -> list[list[dict] | Exception]:
        """Answer several requests (article, questions, top_k) with their windows read in the same
        forward passes (cross-request batching); one result list per request, or the exception
        that request raised (one bad request does not fail the others)."""
        if self.model is None:
            raise RuntimeError("ExtractiveReader.run_batch() called before warm_up().")
        out: list[list[dict] | Exception] = [None] * len(requests)  # type: ignore[list-item]
        prepared = []
        for i, (article, questions, top_k) in enumerate(requests):
            try:
                window_params, decode_params = self.sanitize(top_k=top_k)
                prepared.append((i, article, questions, decode_params,
                                 self.preprocess(article, questions, window_params), window_params))
            except Exception as exc:      # reported to its own caller
                out[i] = exc
        if not prepared:
            return out
        windows, offsets = concat_windows([p[4] for p in prepared])
        sizes = [len(p[4]) for p in prepared]
        callbacks = [(progress or [None] * len(requests))[p[0]] for p in prepared]

        def report(done: int, total: int) -> None:      # each request sees its share of the work
            for cb, n in zip(callbacks, sizes):
                if cb is not None:
                    cb(min(n, round(done * n / total)), n)

        start, end, hidden = self.forward(windows, report)
        for (i, article, questions, decode_params, own, window_params), offset in zip(prepared, offsets):
            try:
                results = self._decode_request(article, questions, windows, start, end, hidden, offset, decode_params)
                out[i] = self._reread_unsure(article, questions, results, window_params, decode_params,
                                              windows, start, end, hidden, offset)
            except Exception as exc:
                out[i] = exc
        return out

    def _reread_unsure(self, article: str, questions: list[str], results: list[dict], window_params: WindowParams,
                        decode_params: DecodeParams, windows: Windows, start: list[np.ndarray], end: list[np.ndarray],
                        hidden: list[np.ndarray] | None, offset: int) -> list[dict]:
        """``results`` with each question refused, or answered below ``reread_below``, on the
        windows that match it best (``min_relevance`` left others unread) answered again from its
        whole reading budget: "not in the article", or an unsure answer, is given only after
        every window the budget allows was read. The windows already read are not read twice.
        The questions are questions ``offset`` onwards of ``windows``."""
        if not window_params.min_relevance:
            return results
        unsure = [q for q, r in enumerate(results) if r["windows"] < r["windows_in_article"]
                  and (r["answer"] is None or r["score"] < window_params.reread_below)]
        if not unsure:
            return results
        # each window's logits (and states) by its token ids: a window already read is reused
        read = {tuple(windows.input_ids[w]): (start[w], end[w], None if hidden is None else hidden[w])
                for q in unsure for w in question_rows(windows, offset + q)}
        asked = [questions[q] for q in unsure]
        budget = self.preprocess(article, asked, replace(window_params, min_relevance=0.0))
        unread = np.array([tuple(ids) not in read for ids in budget.input_ids])
        if not unread.any():
            return results
        new = select_windows(budget, unread)
        s_new, e_new, h_new = self.forward(new)
        for j, ids in enumerate(new.input_ids):
            read[tuple(ids)] = (s_new[j], e_new[j], None if h_new is None else h_new[j])
        s, e, h = (list(x) for x in zip(*(read[tuple(ids)] for ids in budget.input_ids)))
        again = self._decode_request(article, asked, budget, s, e, None if hidden is None else h, 0, decode_params)
        results = list(results)
        for q, r in zip(unsure, again):
            results[q] = r
        return results

    def question_similarity(self, questions: list[str], params: DecodeParams
                            ) -> list[Callable[[list[str]], np.ndarray] | None]:
        """For each question, a function from sentences to their cosines with the question (what
        the sentence prior weighs candidates by), or None for each when the prior is off. The
        questions are embedded now, together; sentences when ``postprocess`` asks for them (only
        those holding candidates near the best), and the encoder keeps recent embeddings."""
        if not params.sentence_prior or self.sentence_encoder is None:
            return [None] * len(questions)
        encoder = self.sentence_encoder
        return [lambda texts, v=v: encoder.embed(texts) @ v for v in encoder.embed(list(questions))]

    def _decode_request(self, article: str, questions: list[str], windows: Windows, start: list[np.ndarray],
                        end: list[np.ndarray], hidden: list[np.ndarray] | None, offset: int,
                        params: DecodeParams) -> list[dict]:
        """One request's results from logits already read: its questions are questions ``offset``
        onwards of ``windows`` (several requests may share one batch)."""
        sentences = split_sentences(article)
        similarity = self.question_similarity(questions, params)
        return [self.postprocess(article, sentences, windows, start, end, offset + q, questions[q], params,
                                 similarity[q], hidden)
                for q in range(len(questions))]

    def preprocess(self, article: str, questions: list[str], params: WindowParams) -> Windows:
        """Windows of every question over the article, which is tokenized once (and kept for the
        next few calls). With ``params.score_windows`` each window is scored against its
        question with BM25 (``relevance``: its score over the best of its question's windows):
        with ``max_windows`` only each question's best windows are read (and with
        ``min_relevance`` only those near the best one's match), and with a window
        prior the spans of a less relevant window are scored down, so that on a long article a
        confident span in a window unrelated to the question does not beat the right one."""
        tokens, index = self.article_tokens(article, params.score_windows)
        windows = build_windows(self.template, question_ids(self.tokenizer, questions, params.max_question_len),
                                tokens, params.max_seq_len, params.doc_stride)
        if not params.score_windows:
            return windows
        return budgeted_windows(windows, index, questions, params.max_windows, params.min_relevance,
                                params.core_margin)

    def article_tokens(self, article: str, with_index: bool = True) -> tuple[ArticleTokens, WordIndex | None]:
        """The article's tokens (and its word index for BM25 when ``with_index``), from the cache."""
        hit = self._articles.get(article)
        if hit is None or (with_index and hit[1] is None):
            hit = (hit[0] if hit else tokenize_article(self.tokenizer, article),
                   WordIndex.build(article) if with_index else None)
            self._articles[article] = hit
            while len(self._articles) > ARTICLE_CACHE:
                self._articles.popitem(last=False)
        else:
            self._articles.move_to_end(article)
        return hit

    def forward(self, windows: Windows, progress: Callable[[int, int], None] | None = None, hidden: bool = False
                ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
        """Start and end logits of every window, computed in length-sorted batches with padding
        only to the longest window of each batch, and, with a list tagger (or ``hidden``), the
        hidden states the tagger reads of each window's tokens (float32; ``_tagger_states``),
        else None; ``progress(windows read, windows)`` is called after each batch."""
        start: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        end: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        keep = hidden or self.list_tagger is not None
        states: list[np.ndarray] | None = [None] * len(windows) if keep else None  # type: ignore[list-item]
        for idx, mask, out in self._passes(windows, progress, hidden=keep):
            starts = out.start_logits.float().cpu().numpy()
            ends = out.end_logits.float().cpu().numpy()
            last = self._tagger_states(out.hidden_states, mask).float().cpu().numpy() if keep else None
            for j, w in enumerate(idx):
                n = len(windows.input_ids[w])
                start[w], end[w] = starts[j, :n], ends[j, :n]
                if keep:
                    states[w] = last[j, :n]
        return start, end, states

    def _tagger_states(self, hidden_states: tuple, attention_mask):
        """What the list tagger reads of a batch: the encoder's last states, or, for a tagger with
        encoder layers of its own, those layers run over the states from below them."""
        tagger = self.list_tagger
        if tagger is None:
            return hidden_states[-1]
        return tagger.encode(hidden_states[-1 - tagger.config.encoder_layers], attention_mask)

    def _passes(self, windows: Windows, progress: Callable[[int, int], None] | None, hidden: bool):
        """(window indices, their attention mask, model output) for each length-sorted batch of
        ``windows``."""
        import torch

        order = np.argsort([-len(x) for x in windows.input_ids], kind="stable")
        pad = self.tokenizer.pad_token_id or 0
        names = set(self.tokenizer.model_input_names)
        bs = windows_per_pass(self.settings.batch_size, self.device)
        with torch.inference_mode():
            for b in range(0, len(order), bs):
                idx = order[b:b + bs]
                enc = {k: torch.from_numpy(v).to(self.device)
                       for k, v in pad_batch(windows, idx, pad).items() if k in names}
                yield idx, enc["attention_mask"], (self.model(**enc, output_hidden_states=True) if hidden
                                                   else self.model(**enc))
                if progress is not None:
                    progress(min(b + bs, len(order)), len(order))

    def postprocess(self, article: str, sentences: list[Sentence], windows: Windows,
                    start: list[np.ndarray], end: list[np.ndarray], q: int, question: str,
                    params: DecodeParams, similarity: Callable[[list[str]], np.ndarray] | None = None,
                    hidden: list[np.ndarray] | None = None) -> dict:
        """The result of question ``q`` (whose text is ``question``) from its windows' logits:
        span search under the priors, the no-answer decision, the answer's spans (a list when
        the tagger, which reads ``hidden``, finds one), scores and the result dict.
        ``similarity``: sentences -> their cosines with the question, for the sentence prior."""
        p, cal = params, params.calibrator
        rows = question_rows(windows, q)
        cands, mass = ranked_candidates(
            article, sentences, windows, start, end, rows, question, max_answer_len=p.max_answer_len,
            top_n=max(p.top_k, p.max_list), keep=max(p.top_k, p.max_list), length_penalty=p.length_penalty,
            span_norm=p.span_norm, window_prior=p.window_prior, repeat_penalty=p.repeat_penalty,
            sentence_prior=p.sentence_prior, similarity=similarity)
        features = candidate_features(cands, mass, windows)
        best = cands[0] if cands else None
        null, answered = no_answer(best, features, cal, p.null_threshold)
        scores = shown_scores(cands, features, cal, 1.0 - null)
        tagger = self.list_tagger is not None and hidden is not None
        items = self._tagged_items(article, windows, start, end, hidden, rows) if answered and tagger else []
        if is_list(items, best):
            answers, top = list_answers(article, sentences, cands, scores, items, mass, 1.0 - null, p.top_k)
        else:
            chosen = ([] if not answered else [best] if tagger
                      else threshold_list(cands, cal, p.null_threshold, p.list_threshold, p.max_list))
            answers = span_answers(article, sentences, cands, scores, chosen, mass, p.top_k)
            top = answers[0] if answers else None
        of_article = windows.of_article[rows[0]] if windows.of_article is not None and len(rows) else len(rows)
        return result_dict(answers, top, answered, null, len(rows), of_article, cal is not None,
                           features[0] if features else None)

    def _tagged_items(self, article: str, windows: Windows, start: list[np.ndarray], end: list[np.ndarray],
                      hidden: list[np.ndarray], rows: np.ndarray) -> list[tuple[int, int, float]]:
        """The list tagger's items over the question's windows (``rows``), merged, article order
        (one item when it is not sure of two, ``list_or_best``);
        ``hidden``: each window's hidden states (``forward``)."""
        threshold = self.list_tagger.config.threshold
        spans = []
        for w in rows:
            mask = windows.context_mask[w]
            probs = self.list_tagger.tag_probs(hidden[w][mask], start[w][mask], end[w][mask])
            spans += decode_tagged_spans(probs, windows.offsets[w][mask], article, threshold)
        return list_or_best(merge_tagged_spans(spans), self.list_tagger.config.list_min)
