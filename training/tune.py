"""Scoring a QA model folder on a SQuAD-format development set and picking its null threshold.

The threshold is the log-odds margin a span needs over the model's "no answer" (see
models.spans.has_answer). It is chosen on the development set with every question asked once of
its own paragraph (answerable) and once of a paragraph from another article (unanswerable), to
maximise the SQuAD v2-style score over both. Before that, the span-length prior
(``qa.length_penalty``, models.spans.window_spans) is chosen on the answerable questions from a
small grid: the model reads the development set once and each value only re-decodes its logits.
Last, the window prior (``qa.window_prior``) and the span normalisation (``qa.span_norm``: rank
spans per window or over the whole article) are chosen together the same way on the development
questions asked of their whole articles (eval.squad.join_articles): the product reads whole
articles, in several windows, and that is where a confident span in an unrelated window does harm.
Then, under the chosen settings, the calibrator (models/calibration.py, training/calibrate.py) is
fitted on the best span of every development question asked of its paragraph and of its whole
article, and of another article's paragraph for unanswerable ones; questions asked of their own
paragraph or article less the sentences that hold the answer ("near misses",
``eval.squad.erase_answers``) and of another whole article are scored too, to report how many
it refuses (``training.calibrate.FIT_GROUPS`` says why they are not fitted on). ``--write`` saves
all of it beside the weights (``inference.json``), where every profile using them finds it.

``--profile NAME`` (``refit_calibrator``) keeps a profile's settings as they are and refits only
its calibrator, on the same groups decoded as the profile serves them (its reading budget and
sentence prior on). Settings chosen after the calibrator (the sentence prior) are brought back in
step this way. With ``--repeat-penalties``, the repeat prior
(``qa.repeat_penalty``) is chosen first, by mean F1 on the paragraph and whole-article groups, and
the calibrator is fitted under it; ``--write`` saves both.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.profiles import INFERENCE_FILE, QASettings, update_inference_settings
from models.qa import DecodeParams, ExtractiveReader, WindowParams
from eval.squad import (QAExample, erase_answers, exact_match, f1_score, foreign_questions, join_articles,
                          read_squad)
from models.text import Sentence, split_sentences
from models.windows import Windows
from training.calibrate import GROUPS, fit_calibrator

LENGTH_PENALTIES = (0.0, 0.025, 0.05, 0.1, 0.2)
WINDOW_PRIORS = (0.0, 1.0, 2.0, 4.0, 8.0)
SPAN_NORMS = ("window", "article")


@dataclass
class ContextLogits:
    """One context read once by the model: its questions' windows and logits, ready to decode."""

    context: str
    examples: list[int]          # indices of the examples asked of this context
    questions: list[str]         # their questions, in that order
    windows: Windows
    start: list[np.ndarray]
    end: list[np.ndarray]
    sentences: list[Sentence]


def read_contexts(reader: ExtractiveReader, examples: list[QAExample], params: WindowParams,
                  desc: str = "read") -> list[ContextLogits]:
    """Run the model once over each context with all its questions (the slow part of a dev run)."""
    by_ctx: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_ctx[e.context].append(i)
    out = []
    for ctx, idx in tqdm(by_ctx.items(), desc=desc, unit="ctx"):
        windows = reader.preprocess(ctx, [examples[i].question for i in idx], params)
        start, end, _ = reader.forward(windows)
        questions = [examples[i].question for i in idx]
        out.append(ContextLogits(ctx, idx, questions, windows, start, end, split_sentences(ctx)))
    return out


def decode(reader: ExtractiveReader, read: list[ContextLogits], n: int, params: DecodeParams) -> list[dict]:
    """Results of the ``n`` examples from their logits, decoded with ``params`` (a window prior
    needs windows read with ``score_windows``; the sentence prior uses the reader's sentence
    encoder)."""
    out: list[dict] = [None] * n  # type: ignore[list-item]
    for c in read:
        similarity = reader.question_similarity(c.questions, params)
        for q, i in enumerate(c.examples):
            out[i] = reader.postprocess(c.context, c.sentences, c.windows, c.start, c.end, q, c.questions[q],
                                        params, similarity[q])
    return out


def margin(r: dict) -> float:
    """log(best span score) - log(no-answer score of its window); -inf without a candidate."""
    if not r["answers"]:
        return -math.inf
    best = r["answers"][0]
    return math.log(max(best["score"], 1e-12)) - math.log(max(r["no_answer_score"], 1e-12))


def best_threshold(pos_margin: np.ndarray, pos_f1: np.ndarray, neg_margin: np.ndarray,
                   neg_weight: float = 1.0) -> tuple[float, float]:
    """The threshold t maximising (sum of F1 of answerable with margin >= t + neg_weight * count
    of unanswerable with margin < t) / (answerable + neg_weight * unanswerable); returns (t, that
    score). ``neg_weight`` < 1 says unanswerable questions are rarer than answerable ones."""
    cands = np.unique(np.concatenate([pos_margin, neg_margin, [-np.inf]]))
    best_t, best_s = 0.0, -1.0
    n = len(pos_margin) + neg_weight * len(neg_margin)
    for t in cands:
        t_eff = t if np.isfinite(t) else -1e9
        s = (pos_f1[pos_margin >= t_eff].sum() + neg_weight * (neg_margin < t_eff).sum()) / n
        if s > best_s:
            best_t, best_s = float(t_eff), float(s)
    return best_t, best_s


def tune_null_threshold(model_dir: str | Path, dev_path: str | Path, max_seq_len: int = 384,
                        doc_stride: int = 128, seed: int = 13, limit: int = 0,
                        length_penalties: tuple[float, ...] = LENGTH_PENALTIES,
                        window_priors: tuple[float, ...] = WINDOW_PRIORS, dtype: str = "float32") -> dict:
    """Score a model on a dev set (EM/F1, answer always given), pick its length prior (best F1),
    its null threshold at that prior, and its window prior on the dev questions asked of their
    whole articles (skipped when ``window_priors`` is empty).

    Returns:
        a JSON-able report: ``length_penalty``, ``null_threshold``, ``span_norm`` and
        ``window_prior`` (the chosen settings), ``em`` and ``f1`` at them, ``by_length_penalty`` and
        ``whole_articles.by_window_prior`` (EM/F1 for each value tried) and ``by_prior`` (the
        threshold for several shares of unanswerable questions).
    """
    settings = QASettings(model=str(model_dir), max_seq_len=max_seq_len, doc_stride=doc_stride,
                          null_threshold=-1e9)
    reader = ExtractiveReader(settings, str(model_dir), dtype=dtype)
    reader.warm_up()
    window_params, decode_params = reader.sanitize()
    exs = [e for e in read_squad(dev_path) if e.answers]
    if limit:
        exs = exs[:limit]
    foreign = foreign_questions(exs, seed)
    pos_read = read_contexts(reader, exs, window_params, "dev answerable")
    by_penalty, results = {}, {}
    for lp in length_penalties:
        res = decode(reader, pos_read, len(exs), replace(decode_params, length_penalty=lp))
        em, f1s = score(res, exs)
        results[lp] = (res, em, f1s)
        by_penalty[str(lp)] = {"em": round(em, 2), "f1": round(float(f1s.mean()) * 100, 2)}
    lp = max(length_penalties, key=lambda v: (round(float(results[v][2].mean()), 6), -v))
    pos, em, f1s = results[lp]
    neg_read = read_contexts(reader, foreign, window_params, "dev unanswerable")
    neg = decode(reader, neg_read, len(foreign), replace(decode_params, length_penalty=lp))
    pm, nm = np.array([margin(r) for r in pos]), np.array([margin(r) for r in neg])
    by_prior = {}
    for w in (1.0, 0.5, 0.25):
        tw, sw = best_threshold(pm, f1s, nm, w)
        by_prior[f"unanswerable_weight_{w}"] = {
            "null_threshold": round(tw, 3), "score": round(sw * 100, 2),
            "answerable_f1": round(float(f1s[pm >= tw].sum() / len(f1s)) * 100, 2),
            "unanswerable_acc": round(float((nm < tw).mean()) * 100, 2)}
    docs = join_articles(exs)
    docs_read = read_contexts(reader, docs, replace(window_params, score_windows=True), "dev whole articles")
    whole = (choose_window_prior(reader, docs, docs_read, replace(decode_params, length_penalty=lp),
                                 window_priors) if window_priors else None)
    even = by_prior["unanswerable_weight_1.0"]
    chosen = replace(decode_params, length_penalty=lp, null_threshold=even["null_threshold"],
                     span_norm=whole["span_norm"] if whole else "window",
                     window_prior=whole["window_prior"] if whole else 0.0)
    # near misses: each question asked of its own paragraph, and of its whole article, less the
    # sentences holding its answer (scored and saved with the rows; FIT_GROUPS leaves them out of the fit)
    erased = [x for x in (erase_answers(e) for e in exs) if x is not None]
    erased_read = read_contexts(reader, erased, window_params, "dev near misses")
    erased_docs = [x for x in (erase_answers(d) for d in docs) if x is not None]
    erased_docs_read = read_contexts(reader, erased_docs, replace(window_params, score_windows=True),
                                     "dev near-miss articles")
    foreign_docs = foreign_questions(docs, seed)
    foreign_docs_read = read_contexts(reader, foreign_docs, replace(window_params, score_windows=True),
                                      "dev foreign articles")
    calibrator, calibration, rows = fit_calibrator(
        [(decode(reader, pos_read, len(exs), chosen), exs), (decode(reader, docs_read, len(docs), chosen), docs)],
        [(decode(reader, neg_read, len(foreign), chosen), foreign),
         (decode(reader, erased_read, len(erased), chosen), erased),
         (decode(reader, erased_docs_read, len(erased_docs), chosen), erased_docs),
         (decode(reader, foreign_docs_read, len(foreign_docs), chosen), foreign_docs)])
    return {"calibrator": calibrator.to_dict(), "calibration": calibration, "calibration_rows": rows,
            "by_prior": by_prior, "window_prior": whole["window_prior"] if whole else 0.0,
            "span_norm": whole["span_norm"] if whole else "window",
            "whole_articles": whole, "dev": str(dev_path), "questions": len(exs), "em": round(em, 2),
            "f1": round(float(f1s.mean()) * 100, 2), "length_penalty": lp, "by_length_penalty": by_penalty,
            "null_threshold": even["null_threshold"], "v2_score_at_threshold": even["score"],
            "max_seq_len": max_seq_len, "doc_stride": doc_stride, "dtype": dtype}


def refit_calibrator(profile: str, dev_path: str | Path, every: int = 1, seed: int = 13,
                     repeat_penalties: tuple[float, ...] = ()) -> dict:
    """The calibrator of ``profile``'s reader refitted under the profile's own settings (its
    decoding settings kept, the sentence prior among them): every ``every``-th development question, asked of the groups of
    ``training.calibrate.GROUPS`` (whole articles, foreign ones and erased answers built from the
    whole set first, so a sample's article is the whole article). Returns the report of
    ``tune_null_threshold``'s calibration part: ``calibrator``, ``calibration`` and
    ``calibration_rows``, and ``model``, the weights folder the calibrator belongs beside.

    With ``repeat_penalties``, the repeat prior (``qa.repeat_penalty``) is first chosen among them
    by ``choose_repeat_penalty`` on the paragraph and article groups, and the calibrator is fitted
    under it (the prior changes the best span's scores, which the calibrator reads); the report
    then has ``repeat_penalty`` and ``by_repeat_penalty``."""
    from models.engine import get_engine
    engine = get_engine(profile)
    engine.warm_up(summarizer=False)
    reader = engine.reader
    window_params, params = reader.sanitize(top_k=1)
    exs = [e for e in read_squad(dev_path) if e.answers]
    pick = slice(None, None, every)
    docs = join_articles(exs)
    pos, foreign, foreign_docs = exs[pick], foreign_questions(exs, seed)[pick], foreign_questions(docs, seed)[pick]
    docs = docs[pick]
    erased = [x for x in (erase_answers(e) for e in pos) if x is not None]
    erased_docs = [x for x in (erase_answers(d) for d in docs) if x is not None]
    scored = replace(window_params, score_windows=True)
    by_group = {"paragraphs": (pos, window_params), "articles": (docs, scored), "foreign": (foreign, window_params),
                "near_misses": (erased, window_params), "near_miss_articles": (erased_docs, scored),
                "foreign_articles": (foreign_docs, scored)}
    reads = {name: read_contexts(reader, examples, wp, f"dev {name}") for name, (examples, wp) in by_group.items()}
    chosen = {}
    if repeat_penalties:
        chosen = choose_repeat_penalty(reader, params, repeat_penalties,
                                       [(reads[g], by_group[g][0]) for g in ("paragraphs", "articles")])
        params = replace(params, repeat_penalty=chosen["repeat_penalty"])
    groups = []
    for name in GROUPS:            # in GROUPS' order, which gives each row its group index
        examples = by_group[name][0]
        groups.append((decode(reader, reads[name], len(examples), params), examples))
    calibrator, calibration, rows = fit_calibrator(groups[:2], groups[2:])
    return {"calibrator": calibrator.to_dict(), "calibration": calibration, "calibration_rows": rows,
            "profile": profile, "model": reader.model_name, "dev": str(dev_path), "every": every,
            "questions": len(pos),
            "sentence_prior": params.sentence_prior, "repeat_penalty": params.repeat_penalty, **chosen}


def choose_repeat_penalty(reader: ExtractiveReader, params: DecodeParams, penalties: tuple[float, ...],
                          sets: list[tuple[list[ContextLogits], list[QAExample]]]) -> dict:
    """The repeat prior with the best mean F1 over ``sets`` (each: contexts read once, and their
    examples; the development questions asked of their paragraphs and of their whole articles),
    ties to the weaker prior, with every value's EM/F1 (``by_repeat_penalty``: value -> one
    {"em", "f1"} per set, and their mean F1)."""
    table, mean_f1 = {}, {}
    for w in penalties:
        scores = [score(decode(reader, read, len(exs), replace(params, repeat_penalty=w)), exs) for read, exs in sets]
        mean_f1[w] = round(float(np.mean([f1s.mean() for _, f1s in scores])) * 100, 2)
        table[str(w)] = {"sets": [{"em": round(em, 2), "f1": round(float(f1s.mean()) * 100, 2)} for em, f1s in scores],
                         "mean_f1": mean_f1[w]}
    best = max(penalties, key=lambda w: (mean_f1[w], -w))
    return {"repeat_penalty": best, "by_repeat_penalty": table}


def score(results: list[dict], examples: list[QAExample]) -> tuple[float, np.ndarray]:
    """EM (percent) and per-question F1 (0-1) of the top answers, always answering."""
    preds = [r["answers"][0]["answer"] if r["answers"] else None for r in results]
    em = float(np.mean([exact_match(p, e.answers) for p, e in zip(preds, examples)])) * 100
    return em, np.array([f1_score(p, e.answers) for p, e in zip(preds, examples)])


def choose_window_prior(reader: ExtractiveReader, docs: list[QAExample], read: list[ContextLogits],
                        decode_params: DecodeParams, window_priors: tuple[float, ...],
                        span_norms: tuple[str, ...] = SPAN_NORMS) -> dict:
    """The span normalisation and window prior with the best F1 on the questions asked of their
    whole articles (``docs``, read with window scoring on as ``read``; ties go to "window" and to
    the weaker prior), with the EM/F1 of every pair tried (``by_window_prior``: normalisation ->
    prior -> scores)."""
    table: dict[str, dict[str, dict]] = {}
    f1: dict[tuple[str, float], float] = {}
    for norm in span_norms:
        for wp in window_priors:
            em, f1s = score(decode(reader, read, len(docs), replace(decode_params, window_prior=wp, span_norm=norm)),
                            docs)
            f1[(norm, wp)] = round(float(f1s.mean()), 6)
            table.setdefault(norm, {})[str(wp)] = {"em": round(em, 2), "f1": round(float(f1s.mean()) * 100, 2)}
    norm, best = max(f1, key=lambda k: (f1[k], k[0] == "window", -k[1]))
    windows = sum(int((c.windows.sample == q).sum()) for c in read for q in range(len(c.examples)))
    return {"span_norm": norm, "window_prior": best, "by_window_prior": table, "questions": len(docs),
            "windows_per_question": round(windows / len(docs), 2)}


TUNED_SETTINGS = ("max_seq_len", "doc_stride", "length_penalty", "span_norm", "window_prior", "null_threshold",
                  "calibrator")


def write_inference_settings(model_dir: str | Path, report: dict, dev: str) -> Path:
    """Save the settings ``report`` chose into ``model_dir/inference.json`` (other keys of an
    existing file are kept)."""
    return update_inference_settings(
        model_dir, {k: report[k] for k in TUNED_SETTINGS},
        about=(f"Settings chosen for these weights on {Path(dev).name} by `python -m training.tune "
               f"MODEL --dev DEV --write`; profiles override any of them."))


def main(argv=None) -> None:
    """``python -m training.tune MODEL_DIR --dev FILE [--max-seq-len N --doc-stride N] [--out FILE] [--write]``,
    or ``python -m training.tune --profile NAME --dev FILE [--every N] [--repeat-penalties W,...] [--out FILE]
    [--write]``"""
    import argparse
    import json
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model", nargs="?", help="QA model folder (not with --profile)")
    p.add_argument("--profile", help="only refit the calibrator of this profile's reader, under the profile's "
                                     "settings; --write saves it beside the profile's QA weights")
    p.add_argument("--every", type=int, default=1, help="with --profile: every N-th development question")
    p.add_argument("--repeat-penalties", default="",
                   help="with --profile: comma-separated repeat priors (qa.repeat_penalty) to choose from on "
                        "the paragraph and article groups before the calibrator is fitted under the best")
    p.add_argument("--dev", required=True, help="SQuAD-format development file")
    p.add_argument("--max-seq-len", type=int, default=384)
    p.add_argument("--doc-stride", type=int, default=128)
    p.add_argument("--limit", type=int, default=0, help="only the first N questions")
    p.add_argument("--length-penalties", default=",".join(map(str, LENGTH_PENALTIES)),
                   help="comma-separated length priors to try (0 = none)")
    p.add_argument("--window-priors", default=",".join(map(str, WINDOW_PRIORS)),
                   help="comma-separated window priors to try on whole articles ('' = skip that step)")
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16"],
                   help="the reader's weights while tuning: use what the profile serves with (runtime.dtype)")
    p.add_argument("--out", help="write the report (JSON) here too")
    p.add_argument("--write", action="store_true",
                   help=f"save the chosen settings beside the weights ({INFERENCE_FILE}), where every "
                        "profile using this model finds them")
    args = p.parse_args(argv)
    if args.profile:
        penalties = tuple(float(v) for v in args.repeat_penalties.split(",") if v.strip())
        report = refit_calibrator(args.profile, args.dev, args.every, repeat_penalties=penalties)
    elif args.model:
        penalties = tuple(float(v) for v in args.length_penalties.split(","))
        priors = tuple(float(v) for v in args.window_priors.split(",") if v.strip())
        report = tune_null_threshold(args.model, args.dev, args.max_seq_len, args.doc_stride, limit=args.limit,
                                     length_penalties=penalties, window_priors=priors, dtype=args.dtype)
    else:
        p.error("give a model folder, or --profile")
    rows = report.pop("calibration_rows")
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        # the calibrator's development rows, for comparing variants of it (training.calibrate)
        np.savez(Path(args.out).with_suffix(".rows.npz"), **rows)
    if args.write and args.profile:
        chosen = {"repeat_penalty": report["repeat_penalty"]} if "by_repeat_penalty" in report else {}
        print(f"wrote {update_inference_settings(report['model'], {'calibrator': report['calibrator'], **chosen})}")
    elif args.write:
        print(f"wrote {write_inference_settings(args.model, report, args.dev)}")


if __name__ == "__main__":
    main()
