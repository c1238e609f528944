"""Calibrated answer scores: the probability that an answer is right, and that the article does
not hold the answer at all.

The reader's raw scores rank spans well but do not mean what a person reads into a percentage:
under one softmax over a whole article a right answer often gets a few percent, and a confident
wrong span can get most of the mass. Two logistic regressions over features the engine already
has map them to probabilities, fitted on the development set for one set of weights
(``training.calibrate``) and saved beside those weights (``inference.json``):

- ``right``: P(the span is right | features), "right" meaning token F1 >= 0.5 against the best
  gold answer;
- ``null``: P(the article does not hold the answer | the best span's features).

Features of a span (``FEATURES``): its log score under the profile's normalisation and priors, the
log of its share of every span decoded for the question, its log-odds margin over its window's
"no answer", its window's BM25 relevance to the question (1 when windows are not scored), and the
log of the number of windows read for the question (0 for a text that fits one window: a short
text's best span is a different bet from a long article's), and the cosine between the question
and the span's sentence under the profile's sentence encoder (NaN without one: a calibrator that
uses it needs ``qa.sentence_encoder``), and the share of the question's names that the span's
sentence or the one before it mentions (``models.text.name_coverage``; 1 for a question without
names), and ``agreement``: the token F1 between the span and the best span of a second reader
asked the same question (``qa.second_opinion``; 0 when it finds none, NaN without one: two
readers trained apart agree more often when the answer is right). A calibrator uses the subset of
them it was fitted on (``Calibrator.features``, saved with it), so one fitted before a feature
existed keeps working.
Each weight of ``right`` on the ``MONOTONE`` features is kept >= 0 and of ``null`` <= 0, so a span
the model scores higher, or whose sentence is more like the question or names more of it, or that
the second reader agrees with more, never gets a lower probability of being right (monotone by
construction, checked by the tests).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FEATURES = ("log_score", "log_share", "log_margin", "relevance", "log_windows", "similarity",
            "name_coverage", "agreement")
SCORE_FEATURES = FEATURES[:3]    # the model's own scores: every calibrator uses them, first
# sign-constrained (module docstring): the model's scores, the sentence's likeness to the question,
# how many of the question's names it mentions and how well a second reader agrees
MONOTONE = SCORE_FEATURES + ("similarity", "name_coverage", "agreement")
# what ``training.tune`` fits a new calibrator on: not ``log_windows``, which by cross-validation
# on the development set (stage m3) refused more answerable paragraphs (2.5% vs 1.9%) and fewer
# near misses (47% / 17% of paragraphs / articles vs 40% / 38%): docs/benchmarks.md
DEFAULT_FEATURES = FEATURES[:4]
# the share of questions whose answer is not in the article that the no-answer probability
# assumes: as many as answerable ones, as the null threshold's choice (training.tune) does
NULL_PRIOR = 0.5
_FLOOR = 1e-9


def feature_columns(names: tuple[str, ...]) -> list[int]:
    """Where each of ``names`` sits in a row of every ``FEATURES``."""
    return [FEATURES.index(f) for f in names]


def span_features(score: float, share: float, null: float, relevance: float = 1.0, windows: int = 1,
                  similarity: float = math.nan, name_coverage: float = 1.0, agreement: float = math.nan
                  ) -> np.ndarray:
    """The feature vector of one span, in the order of ``FEATURES`` (see module docstring)."""
    log_score = math.log(max(score, _FLOOR))
    return np.array([log_score, math.log(max(share, _FLOOR)), log_score - math.log(max(null, _FLOOR)),
                     relevance, math.log(max(windows, 1)), similarity, name_coverage, agreement], dtype=np.float64)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(x: np.ndarray, y: np.ndarray, sign: float = 1.0, monotone: np.ndarray | None = None,
                 l2: float = 1e-3, steps: int = 3000, lr: float = 0.5
                 ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Logistic regression by projected gradient descent on standardised features.

    Args:
        x: (n, features); y: (n,) 0/1 labels.
        sign: +1 keeps the weights of the ``monotone`` columns >= 0, -1 keeps them <= 0.
        monotone: (features,) booleans, the sign-constrained columns (default: the first three).
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
        monotone = np.arange(z.shape[1]) < len(SCORE_FEATURES)
    monotone = np.asarray(monotone, dtype=bool)
    b = math.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6))
    for _ in range(steps):
        p = sigmoid(z @ w + b)
        g = z.T @ (p - y) / len(y) + l2 * w
        w -= lr * g
        b -= lr * float((p - y).mean())
        w[monotone] = np.maximum(w[monotone], 0) if sign > 0 else np.minimum(w[monotone], 0)
    return w, b, mean, scale


@dataclass
class Logistic:
    """One fitted logistic regression over ``FEATURES``."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return sigmoid(((np.atleast_2d(features) - self.mean) / self.scale) @ self.weights + self.bias)

    def to_dict(self) -> dict:
        return {"weights": self.weights.round(6).tolist(), "bias": round(float(self.bias), 6),
                "mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Logistic:
        return cls(np.array(d["weights"], dtype=np.float64), float(d["bias"]),
                   np.array(d["mean"], dtype=np.float64), np.array(d["scale"], dtype=np.float64))


@dataclass
class Calibrator:
    """P(right) and P(not in the article) from a span's features (module docstring)."""

    right: Logistic
    null: Logistic
    features: tuple[str, ...] = FEATURES[:4]     # the ones it was fitted on (older files: these four)

    def reads(self, feature: str) -> bool:
        """Whether it was fitted on ``feature`` (one of ``FEATURES``)."""
        return feature in self.features

    @property
    def needs_similarity(self) -> bool:
        """Whether it reads the sentence's likeness to the question (so needs a sentence encoder)."""
        return self.reads("similarity")

    @property
    def needs_second_opinion(self) -> bool:
        """Whether it reads a second reader's agreement (so needs ``qa.second_opinion``)."""
        return self.reads("agreement")

    @property
    def columns(self) -> list[int]:
        return feature_columns(self.features)

    def prob_right(self, x: np.ndarray) -> np.ndarray:
        """P(right) of each row of ``x`` (rows of every ``FEATURES``, as ``span_features`` gives, or
        a result's ``features``, where None stands for a feature the reader could not compute)."""
        return self.right(np.atleast_2d(np.asarray(x, dtype=np.float64))[:, self.columns])

    def prob_null(self, x: np.ndarray) -> np.ndarray:
        """P(not in the article) of each row of ``x`` (rows of every ``FEATURES``)."""
        return self.null(np.atleast_2d(np.asarray(x, dtype=np.float64))[:, self.columns])

    def p_right(self, features: np.ndarray) -> float:
        return float(self.prob_right(features)[0])

    def p_null(self, features: np.ndarray) -> float:
        return float(self.prob_null(features)[0])

    def to_dict(self) -> dict:
        return {"features": list(self.features), "right": self.right.to_dict(), "null": self.null.to_dict()}

    @staticmethod
    def check_features(names) -> tuple[str, ...]:
        names = tuple(names)
        if names[:len(SCORE_FEATURES)] != SCORE_FEATURES or not set(names) <= set(FEATURES):
            raise ValueError(f"calibrator was fitted on features {list(names)}, this engine computes "
                             f"{list(FEATURES)}: refit it with `python -m training.tune MODEL --dev DEV --write`")
        return names

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        names = cls.check_features(d.get("features", ()))
        return cls(Logistic.from_dict(d["right"]), Logistic.from_dict(d["null"]), names)

    @classmethod
    def fit(cls, features: np.ndarray, right: np.ndarray, unanswerable: np.ndarray,
            null_prior: float = NULL_PRIOR, use: tuple[str, ...] = DEFAULT_FEATURES) -> Calibrator:
        """Fit both regressions on the best span of each development question (``features``: rows
        of every ``FEATURES``; ``use``: the ones this calibrator keeps).

        ``null`` is then moved from the development set's share of unanswerable questions to
        ``null_prior`` (a shift of its intercept by the difference in log-odds), so that "not in
        the article" is said when it is the likelier of the two under that prior: the engine
        answers when ``p_null < 0.5``."""
        use = cls.check_features(use)
        x = np.asarray(features, dtype=np.float64)[:, feature_columns(use)]
        if np.isnan(x).any():
            raise ValueError("some rows lack a feature this calibrator uses (similarity needs the "
                             "profile's sentence encoder while the rows are decoded, agreement its "
                             "second opinion)")
        monotone = np.array([f in MONOTONE for f in use])
        right_model = Logistic(*fit_logistic(x, right, +1.0, monotone))
        w, b, mean, scale = fit_logistic(x, unanswerable, -1.0, monotone)
        share = float(np.clip(np.mean(unanswerable), 1e-6, 1 - 1e-6))
        b += math.log(null_prior / (1 - null_prior)) - math.log(share / (1 - share))
        return cls(right_model, Logistic(w, b, mean, scale), use)


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
