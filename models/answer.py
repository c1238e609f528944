"""The answer decision for one question, from its ranked candidates: whether the article holds
the answer, which spans make it up (the reader's best span, a list the list tagger found, or the
spans within ``qa.list_threshold`` of the best for readers without a tagger), what score each
shows, and the result dict (keys: models/qa.py)."""
from __future__ import annotations

import numpy as np

from models.calibration import Calibrator, feature_row, named_features
from models.spans import Candidate, has_answer, select_list
from models.text import Sentence, sentence_at
from models.windows import Windows

Item = tuple[int, int, float]      # a tagged list item: start, end, the tagger's probability


def candidate_features(cands: list[Candidate], mass: float, windows: Windows) -> list[np.ndarray]:
    """Each candidate's calibration features (``models.calibration.feature_row``)."""
    relevance = windows.relevance if windows.relevance is not None else np.ones(len(windows))
    return [feature_row(c.score, c.score / mass if mass > 0 else 0.0, c.null, float(relevance[c.window]))
            for c in cands]


def no_answer(best: Candidate | None, features: list[np.ndarray], cal: Calibrator | None,
              null_threshold: float) -> tuple[float, bool]:
    """(P(the article does not hold the answer), whether to answer): the calibrator's when there is
    one, else the best span's window's no-answer probability and the null threshold's margin."""
    if cal is not None and best is not None:
        null = cal.p_null(features[0])
        return null, null < 0.5
    return (float(best.null) if best else 1.0), has_answer(best, null_threshold)


def shown_scores(cands: list[Candidate], features: list[np.ndarray], cal: Calibrator | None,
                 ceiling: float) -> list[float]:
    """The score each candidate shows: P(right) when calibrated, else its span score, never above
    ``ceiling`` (1 - the no-answer probability: "Not found (90%)" is never shown beside a 97%
    candidate)."""
    return [min(cal.p_right(f) if cal else c.score, ceiling) for c, f in zip(cands, features)]


def candidate_dict(article: str, sentences: list[Sentence], c: Candidate, selected: bool, mass: float,
                   score: float) -> dict:
    """One entry of a result's ``answers``."""
    sent = sentence_at(sentences, c.start)
    return {"answer": article[c.start:c.end], "score": round(float(score), 6),
            "span_score": round(c.score, 6),
            "share": round(min(1.0, c.score / mass), 6) if mass > 0 else 0.0, "start": c.start,
            "end": c.end, "selected": selected,
            "sentence": sent.text(article) if sent else None,
            "sentence_start": sent.start if sent else None,
            "other_places": [list(p) for p in sorted(c.places)]}


def is_list(items: list[Item], best: Candidate | None) -> bool:
    """The tagger's items make the answer: two or more, one overlapping the reader's best span."""
    return len(items) >= 2 and any(s < best.end and best.start < e for s, e, _ in items)


def list_answers(article: str, sentences: list[Sentence], cands: list[Candidate], scores: list[float],
                 items: list[Item], mass: float, ceiling: float, top_k: int) -> tuple[list[dict], dict]:
    """A list answer: the tagged items (selected, article order, each scored by the tagger's
    probability that it is an item; the one that is the reader's best span keeps that span's
    own dict), then the reader's best span when no item is it, then its other candidates that
    overlap no item (``top_k`` in all); and the best span's dict (``answer`` stays it)."""
    best_span = (cands[0].start, cands[0].end)
    selected = [candidate_dict(article, sentences, cands[0], True, mass, scores[0]) if (s, e) == best_span
                else candidate_dict(article, sentences, Candidate(p, s, e, -1, cands[0].null), True, mass,
                                    min(p, ceiling))
                for s, e, p in items]
    others = [candidate_dict(article, sentences, c, False, mass, scores[i]) for i, c in enumerate(cands)
              if not any(c.start < e and s < c.end for s, e, _ in items)][:top_k]
    best = next((a for a in selected if (a["start"], a["end"]) == best_span), None)
    if best is None:
        best = candidate_dict(article, sentences, cands[0], False, mass, scores[0])
        others = [best] + others[:top_k - 1]
    return selected + others, best


def span_answers(article: str, sentences: list[Sentence], cands: list[Candidate], scores: list[float],
                 chosen: list[Candidate], mass: float, top_k: int) -> list[dict]:
    """The candidates shown (``top_k``, or more when more are chosen), ``chosen`` ones selected."""
    chosen_ids = {id(c) for c in chosen}
    return [candidate_dict(article, sentences, cands[i], id(cands[i]) in chosen_ids, mass, scores[i])
            for i in range(min(len(cands), max(top_k, len(chosen))))]


def threshold_list(cands: list[Candidate], cal: Calibrator | None, null_threshold: float,
                   list_threshold: float, max_list: int) -> list[Candidate]:
    """Without a list tagger: the spans within ``list_threshold`` of the best (``spans.select_list``)
    that clear the null threshold (the best one always, when a calibrator decided to answer)."""
    return [c for c in select_list(cands, list_threshold, max_list)
            if has_answer(c, null_threshold) or (cal is not None and c is cands[0])]


def result_dict(answers: list[dict], top: dict | None, answered: bool, null: float, read: int, of_article: int,
                calibrated: bool, features: np.ndarray | None) -> dict:
    """A question's result (keys: models/qa.py): the best answer's fields when answered, else
    None with ``score`` the no-answer probability."""
    result = {"answer": None, "score": round(null, 6), "start": None, "end": None,
              "sentence": None, "sentence_start": None, "answers": answers, "windows": int(read),
              "windows_in_article": int(of_article), "no_answer_score": round(null, 6),
              "calibrated": calibrated, "features": named_features(features) if features is not None else None}
    if answered:
        result.update({k: top[k] for k in ("answer", "score", "span_score", "share", "start", "end",
                                           "sentence", "sentence_start")})
    return result
