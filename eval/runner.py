"""Run a profile over an evaluation set: one row per question (or article), errors recorded per
row and counted, never fatal."""
from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
from tqdm import tqdm

from eval.metrics import (auroc, exact_match, expected_calibration_error, f1_score, list_recall, multispan_scores,
                          peak_rss_mb, percentiles, reliability_bins, rouge)
from eval.sets import QAItem, SummaryItem
from models.engine import ArticleQA
from models.summarize import candidate_sentences


def run_qa(engine: ArticleQA, items: list[QAItem], batch_by_context: bool = True, desc: str = "qa") -> list[dict]:
    """Answer every item; questions sharing a context go through ``predict_many`` together (their
    ``seconds`` is the batch time divided by its size) unless ``batch_by_context`` is False."""
    by_ctx: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        by_ctx[it.context if batch_by_context else f"{i}"].append(i)
    cap = engine.profile.limits.max_questions
    groups = [idx[k:k + cap] for idx in by_ctx.values() for k in range(0, len(idx), cap)]
    rows: list[dict] = [None] * len(items)  # type: ignore[list-item]
    bar = tqdm(total=len(items), desc=desc, unit="q")
    for idx in groups:
        ctx = items[idx[0]].context
        t0 = time.perf_counter()
        try:
            results = engine.predict_many(ctx, [items[i].question for i in idx])
            err = None
        except Exception as exc:  # recorded and counted, the run goes on
            results, err = [None] * len(idx), f"{type(exc).__name__}: {exc}"
        dt = (time.perf_counter() - t0) / len(idx)
        for i, r in zip(idx, results):
            rows[i] = score_row(items[i], r, dt, err)
        bar.update(len(idx))
    bar.close()
    return rows


def score_row(it: QAItem, r: dict | None, seconds: float, error: str | None) -> dict:
    pred = r["answer"] if r else None
    row = {"id": it.id, "question": it.question, "kind": it.kind, "prediction": pred, "answers": it.answers,
           "em": exact_match(pred, it.answers) if not error else 0.0,
           "f1": f1_score(pred, it.answers) if not error else 0.0,
           "score": r["score"] if r else None, "windows": r["windows"] if r else None,
           "seconds": round(seconds, 4), "error": error}
    # what ``score`` claims: the answer is right (F1 >= 0.5), or the article does not hold one
    row["right"] = (bool(it.answers) and row["f1"] >= 0.5 if pred is not None else not it.answers) \
        if not error else False
    if it.kind == "list":
        row["predictions"] = predicted_spans(r)
        row["gold_items"] = it.list_answers
        row["list_recall"] = list_recall(row["predictions"], it.list_answers)
    return row


def predicted_spans(r: dict | None) -> list[str]:
    """A result's answer as a set of spans: the candidates marked ``selected`` (several for a list
    question), else the best span alone, else none."""
    if not r:
        return []
    selected = [a["answer"] for a in r["answers"] if a["selected"]]
    return selected or ([r["answer"]] if r["answer"] is not None else [])


def summarize_qa(rows: list[dict]) -> dict:
    """Totals: EM/F1 overall and split has-answer / no-answer (SQuAD2 style), list recall, latency."""
    def mean(key, sel):
        v = [r[key] for r in rows if sel(r)]
        return round(float(np.mean(v)) * 100, 2) if v else None
    out = {"questions": len(rows), "errors": sum(1 for r in rows if r["error"]),
           "em": mean("em", lambda r: True), "f1": mean("f1", lambda r: True),
           "has_answer_f1": mean("f1", lambda r: bool(r["answers"])),
           "no_answer_acc": mean("em", lambda r: not r["answers"]),
           "list_recall": mean("list_recall", lambda r: r["kind"] == "list"),
           "peak_rss_mb": round(peak_rss_mb(), 1)}
    lists = [r for r in rows if r["kind"] == "list" and not r["error"]]
    if lists:
        out.update(multispan_scores([r["predictions"] for r in lists], [r["gold_items"] for r in lists]))
        out["spans_per_question"] = round(float(np.mean([len(r["predictions"]) for r in lists])), 2)
    scored = [r for r in rows if not r["error"] and r["score"] is not None]
    answered = [r for r in scored if r["prediction"] is not None]
    out["ece"] = round(expected_calibration_error([r["score"] for r in scored], [r["right"] for r in scored]), 4) \
        if scored else None
    auc = auroc([r["score"] for r in answered], [r["right"] for r in answered])
    out["auroc"] = None if np.isnan(auc) else round(auc, 4)
    out["reliability"] = reliability_bins([r["score"] for r in scored], [r["right"] for r in scored])
    out.update({k: round(v, 1) for k, v in percentiles([r["seconds"] for r in rows if not r["error"]]).items()})
    return out


def lead3(article: str) -> str:
    """The LEAD-3 baseline: the first three sentences, chosen the same way the extractive
    summarizer chooses its candidates (body sentences, no headline or page junk)."""
    return " ".join(s.text(article) for s in candidate_sentences(article)[:3])


def run_summaries(engine: ArticleQA, items: list[SummaryItem], desc: str = "summaries") -> list[dict]:
    rows = []
    for it in tqdm(items, desc=desc, unit="doc"):
        t0 = time.perf_counter()
        try:
            s = engine.summarize(it.article)
            summary, method, err = s["summary"], s["method"], None
        except Exception as exc:
            summary, method, err = "", None, f"{type(exc).__name__}: {exc}"
        dt = time.perf_counter() - t0
        row = {"id": it.id, "method": method, "summary": summary, "seconds": round(dt, 4), "error": err,
               **{k: round(v, 2) for k, v in rouge(summary, it.reference).items()}}
        row.update({f"lead3_{k}": round(v, 2) for k, v in rouge(lead3(it.article), it.reference).items()})
        rows.append(row)
    return rows


def summarize_summaries(rows: list[dict]) -> dict:
    def mean(k):
        return round(float(np.mean([r[k] for r in rows])), 2) if rows else None
    out = {"articles": len(rows), "errors": sum(1 for r in rows if r["error"]),
           **{k: mean(k) for k in ("rouge1", "rouge2", "rougeLsum", "lead3_rouge1", "lead3_rouge2", "lead3_rougeLsum")},
           "peak_rss_mb": round(peak_rss_mb(), 1)}
    out.update({k: round(v, 1) for k, v in percentiles([r["seconds"] for r in rows if not r["error"]]).items()})
    return out
