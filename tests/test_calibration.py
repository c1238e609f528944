"""The calibrator: monotone in the model's own scores, round-trips through JSON, and the metrics
that judge it (ECE, AUROC)."""
import numpy as np
import pytest

from eval.metrics import auroc, expected_calibration_error, reliability_bins
from models.calibration import FEATURES, MONOTONE, Calibrator, span_features


def fitted(seed: int = 0, use=None) -> tuple[Calibrator, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, len(FEATURES)))
    # wrong-signed: log_share, similarity and name_coverage
    logit = 1.5 * x[:, 0] + 0.8 * x[:, 2] - 0.4 * x[:, 1] + 0.3 * x[:, 3] - 0.6 * x[:, 5] - 0.5 * x[:, 6]
    right = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    null = (rng.random(3000) < 1 / (1 + np.exp(logit))).astype(int)
    return (Calibrator.fit(x, right, null, use=use) if use else Calibrator.fit(x, right, null)), x, right


@pytest.mark.parametrize("use", [None, FEATURES])
def test_calibrator_is_monotone_in_the_models_scores_and_the_sentences_likeness_and_names(use):
    cal, x, _ = fitted(use=use)
    base = np.zeros(len(FEATURES))
    assert MONOTONE == ("log_score", "log_share", "log_margin", "similarity", "name_coverage", "agreement")
    for f in [FEATURES.index(name) for name in MONOTONE]:
        grid = np.tile(base, (50, 1))
        grid[:, f] = np.linspace(-4, 4, 50)
        p_right, p_null = cal.prob_right(grid), cal.prob_null(grid)
        assert np.all(np.diff(p_right) >= -1e-12), f"P(right) falls as {FEATURES[f]} rises"
        assert np.all(np.diff(p_null) <= 1e-12), f"P(not in article) rises as {FEATURES[f]} rises"


def test_calibrator_fits_probabilities_and_round_trips():
    cal, x, right = fitted()
    p = cal.prob_right(x)
    assert expected_calibration_error(p, right) < 0.03
    again = Calibrator.from_dict(cal.to_dict())
    assert np.allclose(again.prob_right(x), p, atol=1e-5)
    with pytest.raises(ValueError, match="refit"):
        Calibrator.from_dict({**cal.to_dict(), "features": ["other"]})


def test_span_features_grow_with_the_span_score():
    low, high = span_features(0.01, 0.1, 0.5), span_features(0.2, 0.1, 0.5)
    assert (high[:3] >= low[:3]).all() and high[0] > low[0]
    assert np.isnan(low[5]) and span_features(0.2, 0.1, 0.5, similarity=0.7)[5] == pytest.approx(0.7)


def test_ece_and_auroc_on_known_cases():
    assert expected_calibration_error([0.9, 0.9, 0.1, 0.1], [1, 1, 0, 0]) == pytest.approx(0.1)
    assert expected_calibration_error([1.0, 0.0], [1, 0]) == 0.0
    assert auroc([0.9, 0.8, 0.2], [1, 1, 0]) == 1.0
    assert auroc([0.2, 0.8, 0.9], [1, 0, 0]) == 0.0
    assert auroc([0.5, 0.5], [1, 0]) == 0.5
    bins = reliability_bins([0.05, 0.95, 0.97], [0, 1, 0])
    assert bins[0]["count"] == 1 and bins[9]["count"] == 2 and bins[9]["accuracy"] == 0.5


def synthetic_rows(seed: int = 0, n: int = 900) -> dict[str, np.ndarray]:
    """Development-like rows: answerable paragraphs (group 0) and articles (1) whose rightness
    follows the first feature, and foreign paragraphs (2), unanswerable, told apart by the last
    feature (a calibrator is only calibrated within the groups its features can tell apart)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3 * n, len(FEATURES)))
    x[:, 4] = 0.0                                   # one window each
    group = np.repeat([0, 1, 2], n)
    x[:, 3] = np.where(group == 2, 2.0, -1.0) + 0.1 * x[:, 3]
    unans = (group == 2).astype(int)
    right = ((rng.random(3 * n) < 1 / (1 + np.exp(-2 * x[:, 0]))) & (group < 2)).astype(int)
    return {"features": x, "right": right, "unanswerable": unans, "group": group}


def test_cross_validated_ece_is_out_of_sample_and_per_group():
    from training.calibrate import cross_validated_ece
    table = synthetic_rows()
    cv = cross_validated_ece(table, folds=5)
    ece = cv["ece"]
    assert set(ece) == {"paragraphs", "articles", "foreign", "all"}
    assert ece["all"] < 0.05
    assert cv["refused"]["foreign"] > 0.9 and cv["refused"]["paragraphs"] < 0.1
    # paragraphs never right, which their features cannot tell from articles: the calibrator
    # splits the difference, and the per-group figures show what the pooled one hides
    worse = {**table, "right": np.where(table["group"] == 0, 0, table["right"])}
    ece_worse = cross_validated_ece(worse, folds=5)["ece"]
    assert ece_worse["paragraphs"] > 0.15 and ece_worse["articles"] > 0.15
    assert ece_worse["all"] < ece_worse["paragraphs"] / 3
    # fitted without the foreign rows, it has never seen an unanswerable question: it refuses none
    assert cross_validated_ece(table, folds=5, fit_groups=(0, 1))["refused"]["foreign"] < 0.1


def test_a_calibrator_uses_the_features_it_was_fitted_on():
    """A calibrator saved before ``log_windows`` existed (four features) still scores the engine's
    five-feature rows; one fitted on all five reads the window count; unknown names are refused."""
    table = synthetic_rows()
    x = table["features"]
    x[:, 4] = np.log(np.where(table["group"] == 1, 4, 1))          # articles: four windows
    four = Calibrator.fit(x, table["right"], table["unanswerable"], use=FEATURES[:4])
    old_file = {k: v for k, v in four.to_dict().items()}
    assert old_file["features"] == list(FEATURES[:4])
    again = Calibrator.from_dict(old_file)
    assert np.allclose(again.prob_right(x), four.prob_right(x), atol=1e-5)
    changed = x.copy()
    changed[:, 4] += 3.0                                             # it never looks at the window count
    assert np.allclose(four.prob_right(changed), four.prob_right(x))
    five = Calibrator.fit(x, table["right"], table["unanswerable"], use=FEATURES[:5])
    assert not np.allclose(five.prob_right(changed), five.prob_right(x))
    assert span_features(0.2, 0.5, 0.1, 1.0, windows=4)[4] == pytest.approx(np.log(4))
    with pytest.raises(ValueError, match="refit"):
        Calibrator.fit(x, table["right"], table["unanswerable"], use=("log_score", "other"))


def test_rows_without_a_feature_the_calibrator_uses_are_refused():
    """Rows decoded without a sentence encoder have no similarity (NaN): fitting a calibrator that
    reads it on them is an error, not a silent NaN model; one that does not read it fits."""
    table = synthetic_rows()
    x = table["features"].copy()
    x[:, 5] = np.nan
    with pytest.raises(ValueError, match="sentence encoder"):
        Calibrator.fit(x, table["right"], table["unanswerable"], use=FEATURES)
    cal = Calibrator.fit(x, table["right"], table["unanswerable"])
    assert not cal.needs_similarity and np.isfinite(cal.prob_right(x)).all()


NAMES_CALIBRATOR = {   # reads only name_coverage (and the score features at weight 0)
    "features": ["log_score", "log_share", "log_margin", "name_coverage"],
    "right": {"weights": [0.0, 0.0, 0.0, 4.0], "bias": -2.0, "mean": [0.0] * 4, "scale": [1.0] * 4},
    "null": {"weights": [0.0, 0.0, 0.0, -4.0], "bias": 2.0, "mean": [0.0] * 4, "scale": [1.0] * 4}}


def test_the_engine_gives_each_answer_the_share_of_the_questions_names_its_sentences_mention(
        tiny_profile, tmp_path):
    """Through the engine: the best answer's ``name_coverage`` feature is that of its sentence and
    the one before it, and a calibrator reading it scores each shown answer by it."""
    import yaml

    from models.engine import ArticleQA
    from models.profiles import load_profile
    from models.text import name_context, name_coverage, split_sentences
    raw = yaml.safe_load(open(tiny_profile))
    raw["qa"].update(calibrator=NAMES_CALIBRATOR, model=str((load_profile(tiny_profile).path.parent
                                                             / "tiny-qa").resolve()))
    path = tmp_path / "names.yaml"
    path.write_text(yaml.safe_dump(raw))
    article = ("The summit opened in the capital on Tuesday. Putin gave Kim a Russian-made limousine. "
               "Kim gave Putin paintings.\n\nVietnam hosted a dinner for the delegates later that week.")
    question = "What did Vietnam give Putin?"
    r = ArticleQA(load_profile(path)).predict_many(article, [question], top_k=5)[0]
    sents = split_sentences(article)
    covers = [name_coverage(question, name_context(article, sents, a["start"], a["end"]))
              for a in r["answers"]]
    assert r["features"][FEATURES.index("name_coverage")] == pytest.approx(covers[0])
    p_null = 1 / (1 + np.exp(-(2.0 - 4.0 * covers[0])))
    assert r["no_answer_score"] == pytest.approx(p_null, abs=1e-5)
    for a, c in zip(r["answers"], covers):
        assert a["score"] == pytest.approx(min(1 / (1 + np.exp(-(4.0 * c - 2.0))), 1 - p_null), abs=1e-5)
    assert len(set(covers)) > 1         # answers from sentences naming more or fewer of the question's names
