"""The calibrator: monotone in the model's own scores, round-trips through JSON, and the metrics
that judge it (ECE, AUROC)."""
import numpy as np
import pytest

from eval.metrics import auroc, expected_calibration_error, reliability_bins
from models.calibration import FEATURES, Calibrator, feature_row
from training.calibrate import MONOTONE, fit


def fitted(seed: int = 0) -> tuple[Calibrator, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, len(FEATURES)))
    logit = 1.5 * x[:, 0] + 0.8 * x[:, 2] - 0.4 * x[:, 1] + 0.3 * x[:, 3]     # log_share wrong-signed
    right = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    null = (rng.random(3000) < 1 / (1 + np.exp(logit))).astype(int)
    return fit(x, right, null), x, right


def test_calibrator_is_monotone_in_the_models_scores():
    cal, x, _ = fitted()
    base = np.zeros(len(FEATURES))
    assert MONOTONE == ("log_score", "log_share", "log_margin")
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


def test_feature_row_grows_with_the_span_score():
    low, high = feature_row(0.01, 0.1, 0.5), feature_row(0.2, 0.1, 0.5, relevance=0.3)
    assert (high[:3] >= low[:3]).all() and high[0] > low[0]
    assert high[2] == pytest.approx(np.log(0.2) - np.log(0.5)) and high[3] == 0.3 and low[3] == 1.0


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
    group = np.repeat([0, 1, 2], n)
    x[:, 3] = np.where(group == 2, 2.0, -1.0) + 0.1 * x[:, 3]
    unans = (group == 2).astype(int)
    right = ((rng.random(3 * n) < 1 / (1 + np.exp(-2 * x[:, 0]))) & (group < 2)).astype(int)
    return {"features": x, "right": right, "unanswerable": unans, "group": group}


@pytest.mark.slow     # trains: `make test` runs it, `make check` does not
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


MARGIN_CALIBRATOR = {   # reads only log_margin
    "features": list(FEATURES),
    "right": {"weights": [0.0, 0.0, 1.0, 0.0], "bias": -1.0, "mean": [0.0] * 4, "scale": [1.0] * 4},
    "null": {"weights": [0.0, 0.0, -1.0, 0.0], "bias": 1.0, "mean": [0.0] * 4, "scale": [1.0] * 4}}


def test_the_engine_scores_answers_with_the_calibrator_over_their_named_features(tiny_profile, tmp_path):
    """Through the engine: the result names the best span's features, and a calibrator saved in the
    profile gives the no-answer score and every candidate's score from them (never above
    1 - the no-answer score)."""
    import yaml

    from models.engine import ArticleQA
    from models.profiles import load_profile
    raw = yaml.safe_load(open(tiny_profile))
    raw["qa"].update(calibrator=MARGIN_CALIBRATOR, model=str((load_profile(tiny_profile).path.parent
                                                              / "tiny-qa").resolve()))
    path = tmp_path / "margin.yaml"
    path.write_text(yaml.safe_dump(raw))
    article = ("The summit opened in the capital on Tuesday. Putin gave Kim a Russian-made limousine. "
               "Kim gave Putin paintings.\n\nVietnam hosted a dinner for the delegates later that week.")
    r = ArticleQA(load_profile(path)).predict_many(article, ["What did Putin give Kim?"], top_k=5)[0]
    assert list(r["features"]) == list(FEATURES) and r["calibrated"]
    margin = r["features"]["log_margin"]
    p_null = 1 / (1 + np.exp(-(1.0 - margin)))
    assert r["no_answer_score"] == pytest.approx(p_null, abs=1e-5)
    best = r["answers"][0]
    assert best["score"] == pytest.approx(min(1 / (1 + np.exp(-(margin - 1.0))), 1 - p_null), abs=1e-5)
    assert all(a["score"] <= 1 - p_null + 1e-6 for a in r["answers"])


def test_a_calibrator_fitted_on_other_features_is_refused():
    cal, _, _ = fitted()
    with pytest.raises(ValueError, match="refit"):
        Calibrator.from_dict({**cal.to_dict(), "features": ["log_score", "log_share", "log_margin", "similarity"]})


@pytest.mark.slow     # fits six calibrators
def test_keeping_the_null_half_changes_scores_never_refusals(tmp_path, capsys):
    """``--keep-null``: P(right) is refitted on the rows, the no-answer regression is the one the
    weights hold, so every refusal stays as it was; written back, only ``right`` changed."""
    import json

    from training.calibrate import keeping_null, main, scored, shown_scores
    table = synthetic_rows()
    old, _, _ = fitted(seed=3)                    # fitted on other rows: its P(right) is off for these
    model = tmp_path / "model"
    model.mkdir()
    (model / "inference.json").write_text(json.dumps({"qa": {"calibrator": old.to_dict()}}))
    rows = tmp_path / "dev.rows.npz"
    np.savez(rows, **table)
    main([str(rows), "--current", str(model), "--keep-null", "--write", str(model)])
    out = capsys.readouterr().out
    report = json.loads(out[:out.rindex("}") + 1])
    assert report["keep_null"] and report["current"]["refused"] == report["cross_validated"]["refused"]
    assert report["cross_validated"]["ece"]["all"] < report["current"]["ece"]["all"]
    new = Calibrator.from_dict(json.loads((model / "inference.json").read_text())["qa"]["calibrator"])
    assert new.to_dict()["null"] == old.to_dict()["null"] and new.to_dict()["right"] != old.to_dict()["right"]
    _, answered_old = shown_scores(old, table["features"])
    _, answered_new = shown_scores(new, table["features"])
    assert np.array_equal(answered_old, answered_new)
    assert scored(new, table)["ece"]["all"] < scored(old, table)["ece"]["all"]
    assert keeping_null(new, None) is new


def test_keep_null_without_a_calibrator_to_keep_is_refused(tmp_path):
    from training.calibrate import main
    rows = tmp_path / "dev.rows.npz"
    np.savez(rows, **synthetic_rows())
    with pytest.raises(SystemExit):
        main([str(rows), "--keep-null"])
    with pytest.raises(SystemExit):      # weights without a calibrator: a message, not a KeyError
        main([str(rows), "--current", str(tmp_path), "--keep-null"])
