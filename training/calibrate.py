"""Fitting the calibrator of a set of weights on the development set (models/calibration.py).

``training.tune`` calls ``fit_calibrator`` once it has chosen the decoding settings, with the
development questions decoded under them: each asked of its own paragraph and of its whole
article (answerable), and of a paragraph of another article, of its own paragraph and whole
article less the sentences holding the answer, and of another whole article (unanswerable:
``GROUPS``; the calibrator is fitted on ``FIT_GROUPS``, every group is scored). The best span of
each gives one row of features; "right" is token F1 >= 0.5 against the best gold answer (never
for an unanswerable question), "unanswerable" is which of the two kinds it was.
"""
from __future__ import annotations

import math

import numpy as np

from eval.metrics import expected_calibration_error
from eval.squad import QAExample, f1_score
from models.calibration import FEATURES, Calibrator, Logistic, sigmoid

# sign-constrained: the model's own scores. Each weight of ``right`` on them is kept >= 0 and of
# ``null`` <= 0, so a span the model scores higher never gets a lower probability of being right
# (monotone by construction, checked by the tests)
MONOTONE = ("log_score", "log_share", "log_margin")
# the share of questions whose answer is not in the article that the no-answer probability
# assumes: as many as answerable ones, as the null threshold's choice (training.tune) does
NULL_PRIOR = 0.5

# the row groups training.tune passes, in order (answerable ones first; later groups are appended,
# so rows saved before a group existed keep their indices)
GROUPS = ("paragraphs", "articles", "foreign", "near_misses", "near_miss_articles", "foreign_articles")
# the groups the shipped calibrators are fitted on, chosen by cross-validation on the development
# set (docs/history/benchmarks.md): fitted on near misses too, the calibrator learns to refuse 70-80% of
# them but also 7-15% of answerable questions, which its features cannot tell apart; fitted on
# foreign articles too, it refuses 4 points more of them and of near-miss articles but is less
# well calibrated on answerable articles (ECE +0.012 to +0.020)
FIT_GROUPS = ("paragraphs", "articles", "foreign")


def fit_logistic(x: np.ndarray, y: np.ndarray, sign: float = 1.0, monotone: np.ndarray | None = None,
                 l2: float = 1e-3, steps: int = 3000, lr: float = 0.5
                 ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Logistic regression by projected gradient descent on standardised features.

    Args:
        x: (n, features); y: (n,) 0/1 labels.
        sign: +1 keeps the weights of the ``monotone`` columns >= 0, -1 keeps them <= 0.
        monotone: (features,) booleans, the sign-constrained columns (default: ``MONOTONE``).
        l2: ridge penalty on the weights.
    Returns:
        (weights, bias, mean, scale) for ``sigmoid(((x - mean) / scale) @ weights + bias)``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    w = np.zeros(z.shape[1])
    if monotone is None:
        monotone = np.array([f in MONOTONE for f in FEATURES])
    monotone = np.asarray(monotone, dtype=bool)
    b = math.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6))
    for _ in range(steps):
        p = sigmoid(z @ w + b)
        g = z.T @ (p - y) / len(y) + l2 * w
        w -= lr * g
        b -= lr * float((p - y).mean())
        w[monotone] = np.maximum(w[monotone], 0) if sign > 0 else np.minimum(w[monotone], 0)
    return w, b, mean, scale


def fit(features: np.ndarray, right: np.ndarray, unanswerable: np.ndarray,
        null_prior: float = NULL_PRIOR) -> Calibrator:
    """Both regressions fitted on the best span of each development question (``features``: rows
    of ``FEATURES``).

    ``null`` is then moved from the development set's share of unanswerable questions to
    ``null_prior`` (a shift of its intercept by the difference in log-odds), so that "not in
    the article" is said when it is the likelier of the two under that prior: the reader
    answers when ``p_null < 0.5``."""
    x = np.asarray(features, dtype=np.float64)
    right_model = Logistic(*fit_logistic(x, right, +1.0))
    w, b, mean, scale = fit_logistic(x, unanswerable, -1.0)
    share = float(np.clip(np.mean(unanswerable), 1e-6, 1 - 1e-6))
    b += math.log(null_prior / (1 - null_prior)) - math.log(share / (1 - share))
    return Calibrator(right_model, Logistic(w, b, mean, scale))


def calibration_rows(results: list[dict], examples: list[QAExample], answerable: bool
                     ) -> tuple[list[list[float]], list[int], list[int]]:
    """(features, right, unanswerable) of the best span of each result (results without any
    candidate are skipped: there is nothing to score)."""
    feats, right, unans = [], [], []
    for r, e in zip(results, examples):
        if not r.get("features"):
            continue
        feats.append([r["features"][f] for f in FEATURES])
        best = r["answers"][0]["answer"] if r["answers"] else None
        right.append(int(answerable and f1_score(best, e.answers) >= 0.5))
        unans.append(int(not answerable))
    return feats, right, unans


def calibration_table(answerable: list[tuple[list[dict], list[QAExample]]],
                      unanswerable: list[tuple[list[dict], list[QAExample]]]) -> dict[str, np.ndarray]:
    """Every development row as arrays: ``features`` (n, len(FEATURES)), ``right`` and
    ``unanswerable`` (0/1), and ``group`` (the index of the (results, examples) pair it came from,
    answerable pairs first), so variants of the calibrator can be compared by cross-validation."""
    feats, right, unans, group = [], [], [], []
    pairs = [(g, True) for g in answerable] + [(g, False) for g in unanswerable]
    for i, (pair, ok) in enumerate(pairs):
        f, r, u = calibration_rows(*pair, answerable=ok)
        feats += f
        right += r
        unans += u
        group += [i] * len(f)
    return {"features": np.array(feats, dtype=np.float64), "right": np.array(right),
            "unanswerable": np.array(unans), "group": np.array(group)}


def fit_on_groups(table: dict[str, np.ndarray], fit_groups: tuple[str, ...] = FIT_GROUPS
                  ) -> tuple[Calibrator, np.ndarray]:
    """The calibrator fitted on the rows of ``table`` (``calibration_table``) whose group is in
    ``fit_groups``; returns it and the mask of those rows."""
    sel = np.isin(table["group"], [GROUPS.index(g) for g in fit_groups])
    return fit(table["features"][sel], table["right"][sel], table["unanswerable"][sel]), sel


def fit_calibrator(answerable: list[tuple[list[dict], list[QAExample]]],
                   unanswerable: list[tuple[list[dict], list[QAExample]]],
                   fit_groups: tuple[str, ...] = FIT_GROUPS) -> tuple[Calibrator, dict, dict[str, np.ndarray]]:
    """Fit on the rows of every (results, examples) pair given whose group (``GROUPS``, in the
    order given) is in ``fit_groups``; returns the calibrator, a report (rows fitted, share right,
    in-sample ECE of both probabilities, share refused in every group) and all the rows
    (``calibration_table``)."""
    table = calibration_table(answerable, unanswerable)
    cal, sel = fit_on_groups(table, fit_groups)
    x, y_right, y_null = table["features"][sel], table["right"][sel], table["unanswerable"][sel]
    p_right, p_null = cal.prob_right(x), cal.prob_null(x)
    report = {"rows": len(x), "fit_groups": list(fit_groups), "share_right": round(float(y_right.mean()), 4),
              "share_unanswerable": round(float(y_null.mean()), 4),
              "ece_right": round(expected_calibration_error(p_right, y_right), 4),
              "ece_null": round(expected_calibration_error(p_null, y_null), 4),
              "weights_right": cal.right.weights.round(4).tolist(),
              "weights_null": cal.null.weights.round(4).tolist(),
              "refused_in_sample": refusal_rates(cal, table)}
    return cal, report, table


def group_name(g: int) -> str:
    return GROUPS[g] if g < len(GROUPS) else f"group_{g}"


def refusal_rates(cal: Calibrator, table: dict[str, np.ndarray]) -> dict[str, float]:
    """The share of each group's rows the engine would answer "not in the article" under ``cal``
    (P(null) >= 0.5)."""
    return scored(cal, table)["refused"]


def shown_scores(cal: Calibrator, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the engine would show for each row (models.qa): answered when P(null) < 0.5, with
    ``score`` = min(P(right), 1 - P(null)); otherwise ``score`` = P(null). Returns (score, answered)."""
    p_right, p_null = cal.prob_right(x), cal.prob_null(x)
    answered = p_null < 0.5
    return np.where(answered, np.minimum(p_right, 1.0 - p_null), p_null), answered


def group_ece(score: np.ndarray, outcome: np.ndarray, refused: np.ndarray, group: np.ndarray
              ) -> dict[str, dict[str, float]]:
    """ECE of the shown scores and the share refused, per group (``GROUPS``) and over all rows."""
    name = {g: group_name(g) for g in np.unique(group).tolist()}
    ece = {name[g]: round(expected_calibration_error(score[group == g], outcome[group == g]), 4) for g in name}
    ece["all"] = round(expected_calibration_error(score, outcome), 4)
    return {"ece": ece, "refused": {name[g]: round(float(refused[group == g].mean()), 4) for g in name}}


def scored(cal: Calibrator, table: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """``group_ece`` of one calibrator over every row of ``table``, as the engine would show them:
    how the calibrator a model ships with does on rows decoded under today's settings."""
    score, answered = shown_scores(cal, table["features"])
    outcome = np.where(answered, table["right"], table["unanswerable"])
    return group_ece(score, outcome, ~answered, table["group"])


def keeping_null(cal: Calibrator, null: Logistic | None) -> Calibrator:
    """``cal`` with its no-answer regression replaced by ``null`` (None: ``cal`` as it is). Only
    P(right) is then new: every answer and every "not in the article" stays as it was, and
    only the scores shown with the answers move."""
    return cal if null is None else Calibrator(cal.right, null, cal.features)


def cross_validated_ece(table: dict[str, np.ndarray], folds: int = 5, fit_groups: tuple[int, ...] | None = None,
                        keep_null: Logistic | None = None) -> dict[str, dict[str, float]]:
    """ECE of the shown score (``shown_scores``) and the share refused, by ``folds``-fold
    cross-validation on the development rows, per group (``GROUPS``) and over all of them: the
    out-of-sample view of how well a calibrator of this kind transfers. ``fit_groups``: the
    groups it is fitted on (default all; every group is scored). Folds are contiguous blocks
    within each group (the groups list the same questions in nearly the same order, so a
    question's rows mostly share a fold). ``keep_null``: refit only P(right) and keep this
    no-answer regression (``keeping_null``)."""
    x, right, unans, group = table["features"], table["right"], table["unanswerable"], table["group"]
    fold = np.zeros(len(x), dtype=int)
    for g in np.unique(group):
        idx = np.flatnonzero(group == g)
        fold[idx] = np.arange(len(idx)) * folds // len(idx)
    fit_rows = np.isin(group, fit_groups) if fit_groups is not None else np.ones(len(x), dtype=bool)
    score, outcome, refused = np.zeros(len(x)), np.zeros(len(x)), np.zeros(len(x), dtype=bool)
    for k in range(folds):
        test, train = fold == k, (fold != k) & fit_rows
        cal = keeping_null(fit(x[train], right[train], unans[train]), keep_null)
        s, answered = shown_scores(cal, x[test])
        score[test] = s
        outcome[test] = np.where(answered, right[test], unans[test])
        refused[test] = ~answered
    return group_ece(score, outcome, refused, group)


def main(argv=None) -> None:
    """``python -m training.calibrate ROWS.npz [--current MODEL_DIR [--keep-null]] [--write MODEL_DIR]``:
    the cross-validated ECE of a calibrator on the development rows that ``training.tune --out
    FILE`` saved beside its report (FILE with ``.rows.npz``), beside the ECE of the calibrator
    MODEL_DIR holds now (``--current``); with ``--write``, the calibrator refitted on all the rows
    of ``--fit-groups`` replaces the one in MODEL_DIR's inference.json (the weights the rows came
    from). ``--keep-null`` refits P(right) only, for when the scores drifted under a decoding
    change and the refusals should not."""
    import argparse
    import json

    from models.profiles import INFERENCE_FILE, saved_inference_settings, update_inference_settings
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("rows", help="the .rows.npz file written by `training.tune --out`")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fit-groups", default=",".join(FIT_GROUPS),
                   help=f"comma-separated row groups to fit on ({', '.join(GROUPS)}); all are scored")
    p.add_argument("--current", metavar="MODEL_DIR",
                   help="also score the calibrator MODEL_DIR/inference.json holds now on the same rows")
    p.add_argument("--keep-null", action="store_true",
                   help="refit only P(right) and keep the no-answer half of --current's calibrator, so no "
                        "answer and no refusal changes, only the scores shown")
    p.add_argument("--write", metavar="MODEL_DIR", help="save the refitted calibrator in MODEL_DIR/inference.json")
    args = p.parse_args(argv)
    if args.keep_null and not args.current:
        p.error("--keep-null keeps the no-answer half of a calibrator: name its weights with --current MODEL_DIR")
    table = dict(np.load(args.rows))
    groups = tuple(GROUPS.index(g.strip()) for g in args.fit_groups.split(",") if g.strip())
    current = None
    if args.current:
        saved = saved_inference_settings(args.current).get("calibrator")
        if saved is None:
            p.error(f"--current {args.current}: no calibrator saved beside these weights ({INFERENCE_FILE})")
        current = Calibrator.from_dict(saved)
    null = current.null if args.keep_null else None
    report = {"features": list(FEATURES), "fit_groups": [GROUPS[g] for g in groups], "keep_null": args.keep_null,
              "cross_validated": cross_validated_ece(table, args.folds, fit_groups=groups, keep_null=null)}
    if current is not None:
        report["current"] = scored(current, table)
    print(json.dumps(report, indent=2))
    if args.write:
        cal, _ = fit_on_groups(table, tuple(GROUPS[g] for g in groups))
        cal = keeping_null(cal, null)
        print(f"wrote {update_inference_settings(args.write, {'calibrator': cal.to_dict()})}")


if __name__ == "__main__":
    main()
