"""Calibrated answer scores: the probability that an answer is right, and that the article does
not hold the answer at all.

The reader's raw scores rank spans well but do not mean what a person reads into a percentage:
under one softmax over a whole article a right answer often gets a few percent, and a confident
wrong span can get most of the mass. Two logistic regressions over features the reader already
has map them to probabilities. They are fitted on the development set for one set of weights
(``training.calibrate``) and saved beside those weights (``inference.json``); this module only
reads and applies them.

- ``right``: P(the span is right | features), "right" meaning token F1 >= 0.5 against the best
  gold answer;
- ``null``: P(the article does not hold the answer | the best span's features).

A span's features (``FEATURES``, ``feature_row``): its log score under the profile's
normalisation and priors, the log of its share of every span decoded for the question, its
log-odds margin over its window's "no answer", and its window's BM25 relevance to the question
(1 when windows are not scored).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FEATURES = ("log_score", "log_share", "log_margin", "relevance")
_FLOOR = 1e-9


def feature_row(score: float, share: float, null: float, relevance: float = 1.0) -> np.ndarray:
    """The features of one span, in the order of ``FEATURES``: what a calibrator reads, what the
    result's ``features`` names and what ``training.calibrate`` fits on."""
    log_score = math.log(max(score, _FLOOR))
    return np.array([log_score, math.log(max(share, _FLOOR)), log_score - math.log(max(null, _FLOOR)), relevance],
                    dtype=np.float64)


def named_features(row: np.ndarray) -> dict[str, float]:
    """A feature row as the result's ``features``: name -> value."""
    return dict(zip(FEATURES, row.round(6).tolist()))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


@dataclass
class Logistic:
    """One fitted logistic regression over standardised features."""

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
    features: tuple[str, ...] = FEATURES

    def prob_right(self, x: np.ndarray) -> np.ndarray:
        """P(right) of each row of ``x`` (rows of ``FEATURES``, as ``feature_row`` gives)."""
        return self.right(np.atleast_2d(np.asarray(x, dtype=np.float64)))

    def prob_null(self, x: np.ndarray) -> np.ndarray:
        """P(not in the article) of each row of ``x``."""
        return self.null(np.atleast_2d(np.asarray(x, dtype=np.float64)))

    def p_right(self, features: np.ndarray) -> float:
        return float(self.prob_right(features)[0])

    def p_null(self, features: np.ndarray) -> float:
        return float(self.prob_null(features)[0])

    def to_dict(self) -> dict:
        return {"features": list(self.features), "right": self.right.to_dict(), "null": self.null.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        """Raises ValueError for a calibrator fitted on other features than ``FEATURES``."""
        names = tuple(d.get("features", ()))
        if names != FEATURES:
            raise ValueError(f"calibrator was fitted on features {list(names)}, this reader computes "
                             f"{list(FEATURES)}: refit it with `python -m training.tune MODEL --dev DEV --write`")
        return cls(Logistic.from_dict(d["right"]), Logistic.from_dict(d["null"]), names)
