"""Metrics: SQuAD exact match / F1 (official normalisation plus curly quotes), list recall,
ROUGE-1/2/Lsum (the rouge-score package, stemming on), latency percentiles, peak memory."""
from __future__ import annotations

import resource
import sys

import numpy as np

from eval.squad import exact_match, f1_score, normalize_answer

__all__ = ["exact_match", "f1_score", "normalize_answer", "list_recall", "multispan_scores", "rouge", "percentiles",
           "peak_rss_mb", "expected_calibration_error", "auroc", "reliability_bins"]


def _covers(prediction: str, gold: str) -> bool:
    """The normalised gold span appears, as whole words, inside the normalised prediction."""
    p, g = f" {normalize_answer(prediction)} ", f" {normalize_answer(gold)} "
    return g.strip() != "" and g in p


def list_recall(predictions: list[str], gold_groups: list[list[str]]) -> float:
    """Share of gold items (each a group of acceptable spans) found among the predictions: a
    prediction finds an item when its token F1 with a span of the group is >= 0.5 or it contains
    that span as whole words (one span may list several items: "trade, investment and science")."""
    if not gold_groups:
        return 1.0
    hit = sum(any(f1_score(p, group) >= 0.5 or any(_covers(p, g) for g in group) for p in predictions)
              for group in gold_groups)
    return hit / len(gold_groups)


def multispan_scores(predicted: list[list[str]], gold: list[list[list[str]]]) -> dict[str, float]:
    """MultiSpanQA's span-set scores, micro-averaged over every span of every question (x100).

    ``predicted[i]``: question i's predicted spans; ``gold[i]``: its gold items, each a group of
    acceptable texts (one text per item in MultiSpanQA; the seed set lists alternatives). SQuAD
    normalisation on every span.

    - Exact match: precision = predicted spans equal to some gold text / predicted spans; recall =
      gold items with a text equal to some predicted span / gold items.
    - Partial match: each predicted span earns its best token F1 against the gold texts
      (precision), each gold item its best token F1 against the predicted spans (recall).

    Returns ``em_p``, ``em_r``, ``em_f1``, ``pm_p``, ``pm_r``, ``pm_f1``.
    """
    em_hits_p = em_hits_r = pm_p = pm_r = 0.0
    n_pred = n_gold = 0
    for preds, items in zip(predicted, gold, strict=True):
        texts = [t for group in items for t in group]
        preds = [p for p in preds if normalize_answer(p)]
        n_pred += len(preds)
        n_gold += len(items)
        for p in preds:
            em_hits_p += exact_match(p, texts) if texts else 0.0
            pm_p += f1_score(p, texts) if texts else 0.0
        for group in items:
            em_hits_r += max((exact_match(p, group) for p in preds), default=0.0)
            pm_r += max((f1_score(p, group) for p in preds), default=0.0)

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0
    em_p, em_r = em_hits_p / n_pred if n_pred else 0.0, em_hits_r / n_gold if n_gold else 0.0
    pp, pr = pm_p / n_pred if n_pred else 0.0, pm_r / n_gold if n_gold else 0.0
    return {k: round(v * 100, 2) for k, v in
            {"em_p": em_p, "em_r": em_r, "em_f1": f1(em_p, em_r), "pm_p": pp, "pm_r": pr, "pm_f1": f1(pp, pr)}.items()}


_SCORER = None


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/Lsum F-measures (x100). Lsum splits sentences on newlines, so both texts are put
    one sentence per line first."""
    global _SCORER
    from rouge_score import rouge_scorer
    from models.text import split_sentences
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)

    def lines(t: str) -> str:
        return "\n".join(s.text(t) for s in split_sentences(t)) or t
    s = _SCORER.score(lines(reference), lines(prediction))
    return {"rouge1": s["rouge1"].fmeasure * 100, "rouge2": s["rouge2"].fmeasure * 100,
            "rougeLsum": s["rougeLsum"].fmeasure * 100}


def percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"p50_ms": float("nan"), "p95_ms": float("nan")}
    a = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95))}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def auroc(scores, labels) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random
    negative (ties count half); nan without both classes."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    # average ranks for ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def reliability_bins(probs, outcomes, bins: int = 10) -> list[dict]:
    """Equal-width bins of predicted probability: for each, how many predictions, their mean
    probability and how often they were right."""
    p = np.asarray(probs, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        out.append({"low": b / bins, "high": (b + 1) / bins, "count": int(sel.sum()),
                    "mean_prob": float(p[sel].mean()) if sel.any() else None,
                    "accuracy": float(y[sel].mean()) if sel.any() else None})
    return out


def expected_calibration_error(probs, outcomes, bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between mean probability and accuracy over ``bins``
    equal-width bins (0 = perfectly calibrated)."""
    n = len(probs)
    if not n:
        return float("nan")
    return float(sum(b["count"] / n * abs(b["mean_prob"] - b["accuracy"])
                     for b in reliability_bins(probs, outcomes, bins) if b["count"]))
