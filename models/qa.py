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
  whether ``score`` is calibrated; ``features``: the best span's calibration features
  (models/calibration.py), what a calibrator is fitted on; ``second_opinion``: the best span of
  the second reader (``qa.second_opinion``, "" when it found none), when the calibrator asked it.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from models.list_tagger import ListTagger, decode_tagged_spans, list_or_best, merge_tagged_spans
from models.loading import ModelLoadError, load_pretrained
from models.calibration import Calibrator, span_features
from models.profiles import QASettings
from models.squad import f1_score
from models.sentence_encoder import SentenceEncoder
from models.spans import (Candidate, article_norm_factors, has_answer, merge_candidates, repeat_factors,
                          select_list, sentence_prior_factors, to_candidates, window_spans)
from models.text import Sentence, name_context, name_coverage, sentence_at, split_sentences
from models.window_select import WordIndex, best_windows, bm25_scores, query_terms, question_term_count
from models.windows import (ArticleTokens, PairTemplate, Windows, build_windows, concat_windows, pad_batch,
                            question_ids,
                            select_windows, tokenize_article)

ARTICLE_CACHE = 8   # recently seen articles whose tokens are kept for the next question
# spans kept per window before merging: enough that the window prior, which reorders spans across
# windows, and the removal of nested duplicates still leave top_k distinct candidates
SPANS_PER_WINDOW = 20
# the sentence prior embeds only the sentences of candidates scoring at least this share of the
# best: on XQuAD-en (every third question) re-weighing only those gives the same F1 as re-weighing
# the top 20, with 1.8 sentences embedded a question instead of 6.4 (docs/benchmarks.md)
PRIOR_MIN_SHARE = 1e-4


@dataclass(frozen=True)
class WindowParams:
    """How an article is cut into windows for a question (``preprocess``)."""

    max_seq_len: int
    doc_stride: int
    max_question_len: int
    max_windows: int          # read only each question's best windows by BM25; 0 = all
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
    the weights, see ``models.profiles``); ``sanitize()`` turns them, with any per-call
    overrides, into the parameters of ``preprocess`` and ``postprocess``, which read nothing
    else, so a tuning run can decode the same logits under many settings.

    With a ``sentence_encoder`` (the profile's ``qa.sentence_encoder``) and ``qa.sentence_prior``
    > 0, each candidate is also weighed by how much its sentence is like the question
    (``question_similarity``, ``models.spans.sentence_prior_factors``). With ``qa.repeat_penalty``
    > 0, a candidate is weighed down for each of its words that repeats the question's
    (``models.spans.repeat_factors``).

    With a ``second_opinion`` (another reader, the profile's ``qa.second_opinion``), each question
    is also put to it, and a calibrator fitted on their ``agreement`` reads how far the two best
    spans agree (``second_answers``; models/calibration.py).
    """

    def __init__(self, settings: QASettings, model: str | None, device: str = "cpu", dtype: str = "float32",
                 backend: str = "torch", threads: int = 0, sentence_encoder: SentenceEncoder | None = None,
                 second_opinion: ExtractiveReader | None = None):
        self.settings = settings
        self.sentence_encoder = sentence_encoder
        self.second_opinion = second_opinion
        self.model_name = model
        self.device = device
        self.dtype = dtype
        self.backend = backend
        self.threads = threads
        self.tokenizer = None
        self.model = None
        self.template: PairTemplate | None = None
        self.list_tagger: ListTagger | None = None
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
        backend, dtype = self.runtime_choice()
        tokenizer, model = load_pretrained(self.model_name, "qa", self.device)
        if backend == "onnx":
            from models.onnx_backend import onnx_model
            model = onnx_model(model, tokenizer, dtype, self.threads)
        elif dtype == "int8":
            model = quantize_int8(model)
        elif dtype == "bfloat16":
            import torch
            model = model.to(torch.bfloat16)
        calibrator = self._calibrator(self.settings.calibrator)
        if calibrator is not None and calibrator.needs_similarity and self.sentence_encoder is None:
            raise ModelLoadError("This reader's calibrator reads how much an answer's sentence is like the "
                                 "question, which needs a sentence encoder: set qa.sentence_encoder in the profile.")
        if calibrator is not None and calibrator.needs_second_opinion and self.second_opinion is None:
            raise ModelLoadError("This reader's calibrator reads how far a second reader agrees with the answer, "
                                 "which needs one: set qa.second_opinion in the profile.")
        if self.sentence_encoder is not None:
            self.sentence_encoder.warm_up()
        if self.second_opinion is not None:
            self.second_opinion.warm_up()
        self.template = PairTemplate.from_tokenizer(tokenizer)
        self.tokenizer, self.model = tokenizer, model
        self.list_tagger = self._load_head(ListTagger, backend) if self.settings.list_tagger else None

    def _load_head(self, kind, backend: str):
        """A head saved beside the reader's weights (``ListTagger``), or None when there is none;
        heads read the encoder's hidden states, which only the torch backend gives."""
        if backend != "torch" or not Path(self.model_name).is_dir():
            return None
        return kind.load(self.model_name)

    def runtime_choice(self) -> tuple[str, str]:
        """(backend, dtype) this reader runs: ``runtime.backend`` and ``runtime.dtype`` with
        "auto" resolved for this machine (``resolve_runtime``); ``qa.quantize: int8`` is the
        older spelling of torch int8."""
        if self.settings.quantize == "int8" and self.device == "cpu" and self.backend != "onnx":
            return "torch", "int8"
        return resolve_runtime(self.backend, self.dtype, self.device)

    def sanitize(self, **overrides) -> tuple[WindowParams, DecodeParams]:
        """The parameters of ``preprocess`` and ``postprocess``: the reader's settings with
        ``overrides`` (any ``QASettings`` field; None values are ignored) applied.

        Raises:
            ValueError: an override names no setting.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - set(vars(self.settings))
        if unknown:
            raise ValueError(f"unknown QA setting(s) {sorted(unknown)}")
        s = replace(self.settings, **given)
        return (WindowParams(s.max_seq_len, s.doc_stride, s.max_question_len, s.max_windows,
                             bool(s.max_windows or s.window_prior)),
                DecodeParams(s.top_k, s.max_answer_len, s.length_penalty, s.span_norm, s.window_prior,
                             s.null_threshold, s.list_threshold, s.max_list, self._calibrator(s.calibrator),
                             s.sentence_prior if self.sentence_encoder is not None else 0.0, s.repeat_penalty))

    def _calibrator(self, spec: dict | None) -> Calibrator | None:
        """The calibrator of a settings dict, built once per dict."""
        if not spec:
            return None
        key = id(spec)
        if getattr(self, "_calibrator_key", None) != key:
            self._calibrator_cache, self._calibrator_key = Calibrator.from_dict(spec), key
        return self._calibrator_cache

    def run(self, article: str, questions: list[str], top_k: int | None = None,
            progress: Callable[[int, int], None] | None = None, **overrides) -> list[dict]:
        """Answer every question about ``article``; questions are batched together.

        Args:
            article: validated article text.
            questions: validated, non-empty questions.
            top_k: candidates per result (default: the profile's ``qa.top_k``).
            progress: called with (windows read, windows to read) as the model reads.
            overrides: other ``QASettings`` for this call only.
        Returns:
            One result dict per question, in order.
        """
        if self.model is None:
            raise RuntimeError("ExtractiveReader.run() called before warm_up().")
        window_params, decode_params = self.sanitize(top_k=top_k, **overrides)
        windows = self.preprocess(article, questions, window_params)
        start, end, hidden = self.forward(windows, progress)
        return self._decode_request(article, questions, windows, start, end, hidden, 0, decode_params)

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
                                 self.preprocess(article, questions, window_params)))
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
        for (i, article, questions, decode_params, own), offset in zip(prepared, offsets):
            try:
                out[i] = self._decode_request(article, questions, windows, start, end, hidden, offset, decode_params)
            except Exception as exc:
                out[i] = exc
        return out

    def question_similarity(self, questions: list[str], params: DecodeParams, always: bool = False
                            ) -> list[Callable[[list[str]], np.ndarray] | None]:
        """For each question, a function from sentences to their cosines with the question (what
        ``postprocess`` weighs candidates by, and the calibrator's ``similarity``), or None for each
        when neither the sentence prior nor the calibrator asks for them (``always``: a calibrator
        being fitted will) or there is no encoder. The
        questions are embedded now, together; sentences when ``postprocess`` asks for them (only
        those holding candidates near the best), and the encoder keeps recent embeddings."""
        wanted = always or params.sentence_prior or (params.calibrator is not None
                                                     and params.calibrator.needs_similarity)
        if not wanted or self.sentence_encoder is None:
            return [None] * len(questions)
        encoder = self.sentence_encoder
        return [lambda texts, v=v: encoder.embed(texts) @ v for v in encoder.embed(list(questions))]

    def _decode_request(self, article: str, questions: list[str], windows: Windows, start: list[np.ndarray],
                        end: list[np.ndarray], hidden: list[np.ndarray] | None, offset: int,
                        params: DecodeParams) -> list[dict]:
        """One request's results from logits already read: its questions are questions ``offset``
        onwards of ``windows`` (several requests may share one batch), each decoded with what its
        priors and calibrator read (the sentences' likeness, the second reader's answers)."""
        sentences = split_sentences(article)
        similarity = self.question_similarity(questions, params)
        seconds = self.second_answers(article, questions) if _reads_agreement(params) else None
        return [self.postprocess(article, sentences, windows, start, end, offset + q, questions[q], params,
                                 similarity[q], seconds[q] if seconds else None, hidden)
                for q in range(len(questions))]

    def second_answers(self, article: str, questions: list[str]) -> list[str] | None:
        """The second reader's best span for each question ("" where it finds none, whether or not
        it would answer), or None without a second reader. Its own settings decide its windows
        and priors; it has no calibrator or sentence encoder of its own."""
        if self.second_opinion is None:
            return None
        results = self.second_opinion.run(article, questions, top_k=1)
        return [r["answers"][0]["answer"] if r["answers"] else "" for r in results]

    def preprocess(self, article: str, questions: list[str], params: WindowParams) -> Windows:
        """Windows of every question over the article, which is tokenized once (and kept for the
        next few calls). With ``params.score_windows`` each window is scored against its
        question with BM25 (``relevance``: its score over the best of its question's windows):
        with ``max_windows`` only each question's best windows are read, and with a window
        prior (``postprocess``) the spans of a less relevant window are scored down, so that on
        a long article a confident span in a window unrelated to the question does not beat the
        right one."""
        tokens, index = self.article_tokens(article, params.score_windows)
        windows = build_windows(self.template, question_ids(self.tokenizer, questions, params.max_question_len),
                                tokens, params.max_seq_len, params.doc_stride)
        if not params.score_windows:
            return windows
        spans = np.array([[o[m][0, 0], o[m][-1, 1]] if m.any() else [0, 0]
                          for o, m in zip(windows.offsets, windows.context_mask)], dtype=np.int64)
        keep = np.zeros(len(windows), dtype=bool)
        relevance = np.ones(len(windows))
        for q, question in enumerate(questions):
            ws = np.flatnonzero(windows.sample == q)
            scores = bm25_scores(index, spans[ws], question)
            if scores.max() > 0:
                relevance[ws] = scores / scores.max()
            keep[ws[best_windows(scores, params.max_windows)]] = True
        return select_windows(windows, keep if params.max_windows else None, relevance)

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
        encoder's last hidden states of each window's tokens (float32, what the tagger reads),
        else None; ``progress(windows read, windows)`` is called after each batch."""
        start: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        end: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        keep = hidden or self.list_tagger is not None
        states: list[np.ndarray] | None = [None] * len(windows) if keep else None  # type: ignore[list-item]
        for idx, out in self._passes(windows, progress, hidden=keep):
            starts = out.start_logits.float().cpu().numpy()
            ends = out.end_logits.float().cpu().numpy()
            last = out.hidden_states[-1].float().cpu().numpy() if keep else None
            for j, w in enumerate(idx):
                n = len(windows.input_ids[w])
                start[w], end[w] = starts[j, :n], ends[j, :n]
                if keep:
                    states[w] = last[j, :n]
        return start, end, states

    def _passes(self, windows: Windows, progress: Callable[[int, int], None] | None, hidden: bool):
        """(window indices, model output) for each length-sorted batch of ``windows``."""
        import torch

        order = np.argsort([-len(x) for x in windows.input_ids], kind="stable")
        pad = self.tokenizer.pad_token_id or 0
        names = set(self.tokenizer.model_input_names)
        bs = self.settings.batch_size
        with torch.inference_mode():
            for b in range(0, len(order), bs):
                idx = order[b:b + bs]
                enc = {k: torch.from_numpy(v).to(self.device)
                       for k, v in pad_batch(windows, idx, pad).items() if k in names}
                yield idx, (self.model(**enc, output_hidden_states=True) if hidden else self.model(**enc))
                if progress is not None:
                    progress(min(b + bs, len(order)), len(order))

    def postprocess(self, article: str, sentences: list[Sentence], windows: Windows,
                    start: list[np.ndarray], end: list[np.ndarray], q: int, question: str,
                    params: DecodeParams, similarity: Callable[[list[str]], np.ndarray] | None = None,
                    second: str | None = None, hidden: list[np.ndarray] | None = None) -> dict:
        """Span search over all windows of question ``q`` (whose text is ``question``), merged into
        one result. ``similarity``: sentences -> their cosines with the question
        (``question_similarity``), for the sentence prior; ``second``: the second reader's best
        span (``second_answers``), for the calibrator's ``agreement``."""
        p = params
        rows = np.flatnonzero(windows.sample == q)          # this question's windows
        width = max(len(start[w]) for w in rows)
        start_logits = np.full((len(rows), width), -1e4, dtype=np.float32)
        end_logits = np.full_like(start_logits, -1e4)
        mask = np.zeros((len(rows), width), dtype=bool)
        for r, w in enumerate(rows):
            n = len(start[w])
            start_logits[r, :n], end_logits[r, :n], mask[r, :n] = start[w], end[w], windows.context_mask[w]
        top_n = max(p.top_k, p.max_list, SPANS_PER_WINDOW)
        cands: list[Candidate] = []
        chunk = max(1, 4_000_000 // (width * width))     # bounds the (windows, T, T) score array
        for c in range(0, len(rows), chunk):
            spans, scores, null_scores = window_spans(start_logits[c:c + chunk], end_logits[c:c + chunk],
                                                      mask[c:c + chunk], p.max_answer_len, top_n,
                                                      p.length_penalty)
            cands += to_candidates(article, spans, scores, null_scores, windows.offsets, list(rows[c:c + chunk]))
        # ranking only: window_score, and so the no-answer decision, stay as they are
        factor = np.ones(len(windows))
        if p.span_norm == "article":
            factor[rows] = article_norm_factors(start_logits, end_logits, mask)
        if p.window_prior and windows.relevance is not None:
            factor *= np.exp(-p.window_prior * (1.0 - windows.relevance))
        for cand in cands:
            cand.score *= float(factor[cand.window])
        if p.repeat_penalty and cands:
            terms = set(query_terms(question))
            repeats = np.array([question_term_count(terms, article[c.start:c.end]) for c in cands])
            for cand, f in zip(cands, repeat_factors(repeats, p.repeat_penalty)):
                cand.score *= float(f)
        cosines: dict[str, float] = {}          # sentence -> its cosine with the question, as embedded
        if p.sentence_prior and similarity is not None and cands:
            factors, cosines = self._sentence_factors(article, sentences, cands, similarity, p.sentence_prior)
            for cand, f in zip(cands, factors):
                cand.score *= float(f)
        mass = sum(c.score for c in cands)
        cands = merge_candidates(cands, article, max(p.top_k, p.max_list))
        relevance = windows.relevance if windows.relevance is not None else np.ones(len(windows))
        cal = p.calibrator
        # the calibrator's similarity: of every candidate shown if it reads it, else of the best (its features)
        likeness = self._sentence_cosines(article, sentences, cands if cal and cal.needs_similarity else cands[:1],
                                          similarity, cosines)
        likeness += [math.nan] * (len(cands) - len(likeness))
        # the share of the question's names a candidate's sentences mention: likewise
        named = [name_coverage(question, name_context(article, sentences, c.start, c.end))
                 for c in (cands if cal and cal.reads("name_coverage") else cands[:1])]
        named += [math.nan] * (len(cands) - len(named))
        agreed = [answer_agreement(article[c.start:c.end], second)
                  for c in (cands if cal and cal.reads("agreement") else cands[:1])]
        agreed += [math.nan] * (len(cands) - len(agreed))
        features = [span_features(c.score, c.score / mass if mass > 0 else 0.0, c.null, float(relevance[c.window]),
                                  len(rows), sim, names, agree)
                    for c, sim, names, agree in zip(cands, likeness, named, agreed)]
        best = cands[0] if cands else None
        if cal is not None and best is not None:
            null = cal.p_null(features[0])
            answered = null < 0.5
        else:
            null = float(best.null) if best else 1.0
            answered = has_answer(best, p.null_threshold)
        # what is shown as a candidate's chance of being right never exceeds the chance that the
        # article holds an answer at all: "Not found (90%)" is never shown beside a 97% candidate
        ceiling = 1.0 - null
        items = (self._tagged_items(article, windows, start, end, hidden, rows)
                 if answered and hidden is not None and self.list_tagger is not None else [])
        if len(items) >= 2 and any(s < best.end and best.start < e for s, e, _ in items):
            # the tagger found a list where the reader found its answer: its items are the answer
            answers, top = self._list_answers(article, sentences, cands, features, items, mass, ceiling, p.top_k, cal)
        else:
            if self.list_tagger is not None and hidden is not None:    # no list: the best span alone
                chosen = [best] if answered else []
            else:
                chosen = [c for c in select_list(cands, p.list_threshold, p.max_list)
                          if has_answer(c, p.null_threshold) or (cal is not None and c is best)] if answered else []
            chosen_ids = {id(c) for c in chosen}
            shown = list(range(min(len(cands), max(p.top_k, len(chosen)))))
            answers = [self._as_dict(article, sentences, cands[i], id(cands[i]) in chosen_ids, mass,
                                     min(cal.p_right(features[i]) if cal else cands[i].score, ceiling))
                       for i in shown]
            top = answers[0] if answers else None
        of_article = windows.of_article[rows[0]] if windows.of_article is not None and len(rows) else len(rows)
        result = {"answer": None, "score": round(null, 6), "start": None, "end": None,
                  "sentence": None, "sentence_start": None, "answers": answers, "windows": int(len(rows)),
                  "windows_in_article": int(of_article),
                  "no_answer_score": round(null, 6), "calibrated": cal is not None,
                  # a feature this reader cannot compute (similarity without an encoder) is None:
                  # results stay comparable and JSON-safe (NaN is neither)
                  "features": [None if math.isnan(v) else v for v in features[0].round(6).tolist()]
                  if features else None}
        if second is not None:
            result["second_opinion"] = second
        if answered:
            result.update({k: top[k] for k in ("answer", "score", "span_score", "share", "start", "end",
                                               "sentence", "sentence_start")})
        return result

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

    def _list_answers(self, article: str, sentences: list[Sentence], cands: list[Candidate], features: list,
                      items: list[tuple[int, int, float]], mass: float, ceiling: float, top_k: int,
                      cal: Calibrator | None) -> tuple[list[dict], dict]:
        """A list answer: the tagged items (selected, article order, each scored by the tagger's
        probability that it is an item; the one that is the reader's best span keeps that span's
        own dict), then the reader's best span when no item is it, then its other candidates that
        overlap no item (``top_k`` in all); and the best span's dict (``answer`` stays it)."""
        scored = [min(cal.p_right(features[i]) if cal else c.score, ceiling) for i, c in enumerate(cands)]
        best_span = (cands[0].start, cands[0].end)
        selected = [self._as_dict(article, sentences, cands[0], True, mass, scored[0]) if (s, e) == best_span
                    else self._as_dict(article, sentences, Candidate(p, s, e, -1, cands[0].null), True, mass,
                                       min(p, ceiling))
                    for s, e, p in items]
        others = [self._as_dict(article, sentences, c, False, mass, scored[i]) for i, c in enumerate(cands)
                  if not any(c.start < e and s < c.end for s, e, _ in items)][:top_k]
        best = next((a for a in selected if (a["start"], a["end"]) == best_span), None)
        if best is None:
            best = self._as_dict(article, sentences, cands[0], False, mass, scored[0])
            others = [best] + others[:top_k - 1]
        return selected + others, best

    @staticmethod
    def _sentence_factors(article: str, sentences: list[Sentence], cands: list[Candidate],
                          similarity: Callable[[list[str]], np.ndarray], weight: float
                          ) -> tuple[np.ndarray, dict[str, float]]:
        """The sentence prior's factor for each candidate, and the cosines of the sentences it
        embedded. Only the sentences of candidates scoring at least ``PRIOR_MIN_SHARE`` of the best
        are embedded; the others count as the least similar, which cannot lift them past the best
        (``spans.sentence_prior_factors``)."""
        best = max(c.score for c in cands)
        where = [sentence_at(sentences, c.start) if c.score >= PRIOR_MIN_SHARE * best else None for c in cands]
        text_of = [s.text(article) if s is not None else None for s in where]
        texts = list(dict.fromkeys(t for t in text_of if t is not None))
        cos = dict(zip(texts, similarity(texts).tolist())) if texts else {}
        return sentence_prior_factors(np.array([cos.get(t, np.nan) for t in text_of]), weight), cos

    @staticmethod
    def _sentence_cosines(article: str, sentences: list[Sentence], cands: list[Candidate],
                          similarity: Callable[[list[str]], np.ndarray] | None, known: dict[str, float]
                          ) -> list[float]:
        """Each candidate's sentence's cosine with the question (the calibrator's ``similarity``;
        the span's own text stands in for a missing sentence; NaN without an encoder); ``known``:
        those the sentence prior already has."""
        if similarity is None or not cands:
            return [math.nan] * len(cands)
        text_of = [s.text(article) if (s := sentence_at(sentences, c.start)) is not None else article[c.start:c.end]
                   for c in cands]
        missing = list(dict.fromkeys(t for t in text_of if t not in known))
        cos = {**known, **dict(zip(missing, similarity(missing).tolist()))} if missing else known
        return [cos[t] for t in text_of]

    @staticmethod
    def _as_dict(article: str, sentences: list[Sentence], c: Candidate, selected: bool, mass: float,
                 score: float) -> dict:
        sent = sentence_at(sentences, c.start)
        return {"answer": article[c.start:c.end], "score": round(float(score), 6),
                "span_score": round(c.score, 6),
                "share": round(min(1.0, c.score / mass), 6) if mass > 0 else 0.0, "start": c.start,
                "end": c.end, "selected": selected,
                "sentence": sent.text(article) if sent else None,
                "sentence_start": sent.start if sent else None}


def answer_agreement(span: str, second: str | None) -> float:
    """How far a span agrees with the second reader's best span: their token F1 (SQuAD
    normalisation), 0 when the second reader found none (""), NaN without a second reader."""
    if second is None:
        return math.nan
    return f1_score(span, [second]) if second else 0.0


def _reads_agreement(params: DecodeParams) -> bool:
    return params.calibrator is not None and params.calibrator.needs_second_opinion


def resolve_dtype(dtype: str) -> str:
    """"auto" -> "bfloat16" where the CPU has native bf16 (AVX-512 BF16 or AMX), else "float32".

    bfloat16 weights run the reader about twice as fast on such CPUs; elsewhere bf16 is emulated
    and slower than float32, so auto never picks it there."""
    if dtype == "auto":
        from models.cpu_features import has_native_bf16
        return "bfloat16" if has_native_bf16() else "float32"
    return dtype


def resolve_runtime(backend: str, dtype: str, device: str = "cpu") -> tuple[str, str]:
    """The (backend, dtype) to run. ``backend``: "torch", "onnx" or "auto"; ``dtype``: "float32",
    "bfloat16", "int8" or "auto". On a GPU: torch, float32 unless bfloat16 is asked for.

    "auto" is the fastest runtime measured to keep the answers of torch float32 (README
    "Performance"): torch bfloat16 where the CPU computes bf16 natively (AVX-512 BF16 / AMX; same
    top answer on 399 of 400 XQuAD-en questions, 0.37x the anchor's latency), torch float32
    elsewhere. ONNX Runtime float32 keeps every answer but was no faster overall (0.88x torch
    float32 on MPNet, 1.6x on MiniLM), and int8 (either backend) changes answers (ONNX int8:
    same top answer on 323 of 400, F1 -2.6), so "auto" picks neither; both remain settings."""
    if device != "cpu":
        return "torch", ("bfloat16" if dtype == "bfloat16" else "float32")
    if backend == "onnx":
        return "onnx", ("float32" if dtype == "auto" else dtype)
    if backend == "auto" and dtype in ("float32", "int8"):
        return "torch", dtype
    return "torch", resolve_dtype(dtype)


def quantize_int8(model):
    """Dynamic int8 quantization of the linear layers (weights int8, activations quantized on the
    fly): about 1.5x faster matrix multiplies on AVX2 CPUs, a quarter of the weight memory."""
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch points users at torchao; this API still works
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
