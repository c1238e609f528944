"""Fitting the calibrator of a set of weights on the development set (models/calibration.py).

``training.tune`` calls ``fit_calibrator`` once it has chosen the decoding settings, with the
development questions decoded under them: each asked of its own paragraph and of its whole
article (answerable), and of a paragraph of another article (unanswerable). The best span of each
gives one row of features; "right" is token F1 >= 0.5 against the best gold answer (never for an
unanswerable question), "unanswerable" is which of the two kinds it was.
"""
from __future__ import annotations

import numpy as np

from models.calibration import Calibrator, expected_calibration_error
from models.squad import QAExample, f1_score


def calibration_rows(results: list[dict], examples: list[QAExample], answerable: bool
                     ) -> tuple[list[list[float]], list[int], list[int]]:
    """(features, right, unanswerable) of the best span of each result (results without any
    candidate are skipped: there is nothing to score)."""
    feats, right, unans = [], [], []
    for r, e in zip(results, examples):
        if not r.get("features"):
            continue
        feats.append(r["features"])
        best = r["answers"][0]["answer"] if r["answers"] else None
        right.append(int(answerable and f1_score(best, e.answers) >= 0.5))
        unans.append(int(not answerable))
    return feats, right, unans


def fit_calibrator(answerable: list[tuple[list[dict], list[QAExample]]],
                   unanswerable: list[tuple[list[dict], list[QAExample]]]) -> tuple[Calibrator, dict]:
    """Fit on every (results, examples) pair given; returns the calibrator and a report (rows,
    share right, in-sample ECE of both probabilities)."""
    feats, right, unans = [], [], []
    for group, ok in [(g, True) for g in answerable] + [(g, False) for g in unanswerable]:
        f, r, u = calibration_rows(*group, answerable=ok)
        feats += f
        right += r
        unans += u
    x, y_right, y_null = np.array(feats), np.array(right), np.array(unans)
    cal = Calibrator.fit(x, y_right, y_null)
    p_right, p_null = cal.right(x), cal.null(x)
    report = {"rows": len(x), "share_right": round(float(y_right.mean()), 4),
              "share_unanswerable": round(float(y_null.mean()), 4),
              "ece_right": round(expected_calibration_error(p_right, y_right), 4),
              "ece_null": round(expected_calibration_error(p_null, y_null), 4),
              "weights_right": cal.right.weights.round(4).tolist(),
              "weights_null": cal.null.weights.round(4).tolist()}
    return cal, report
