"""A second opinion (qa.second_opinion): another reader answers each question too, and a
calibrator fitted on their ``agreement`` (token F1 of the two best spans) scores answers by it.
On tiny random-weight readers: the second reader's answer is what that profile answers alone,
each shown answer's agreement is its F1 with it, the calibrator reads it, and the rows that
training.tune fits calibrators on carry it."""
import math

import numpy as np
import pytest
import yaml

from models.calibration import FEATURES, Calibrator
from models.engine import ArticleQA
from models.loading import ModelLoadError
from models.profiles import load_profile
from models.qa import answer_agreement
from models.squad import f1_score
from tests.tiny_models import build_tiny_qa

AGREE_CALIBRATOR = {   # reads only agreement (and the score features at weight 0)
    "features": ["log_score", "log_share", "log_margin", "agreement"],
    "right": {"weights": [0.0, 0.0, 0.0, 4.0], "bias": -2.0, "mean": [0.0] * 4, "scale": [1.0] * 4},
    "null": {"weights": [0.0, 0.0, 0.0, -4.0], "bias": 2.0, "mean": [0.0] * 4, "scale": [1.0] * 4}}

ARTICLE = ("The summit opened in the capital on Tuesday. Putin gave Kim a Russian-made limousine and a tea set. "
           "Kim gave Putin paintings of the Russian leader.\n\nVietnam hosted a dinner for the delegates later "
           "that week, and the two leaders signed a treaty on mutual aid.")
QUESTION = "What did Kim give Putin?"


def profile_pair(tiny_profile: str, folder, calibrator: dict | None = AGREE_CALIBRATOR, second: bool = True):
    """(first, second): YAML paths of a tiny reader whose calibrator is ``calibrator`` and, as
    its second opinion, a tiny reader of other random weights and shorter windows."""
    build_tiny_qa(folder / "other-qa", seed=1)
    raw = yaml.safe_load(open(tiny_profile))
    model = str((load_profile(tiny_profile).path.parent / "tiny-qa").resolve())
    other = {**raw, "name": "other", "qa": {**raw["qa"], "model": "other-qa", "max_seq_len": 96, "doc_stride": 24}}
    (folder / "other.yaml").write_text(yaml.safe_dump(other))
    raw["qa"].update(model=model, calibrator=calibrator)
    if second:
        raw["qa"]["second_opinion"] = "other.yaml"     # a file beside this profile
    (folder / "first.yaml").write_text(yaml.safe_dump(raw))
    return folder / "first.yaml", folder / "other.yaml"


def test_agreement_is_token_f1_zero_without_an_answer_and_nan_without_a_reader():
    assert answer_agreement("a Russian-made limousine", "Russian-made limousine") == pytest.approx(1.0)
    partial = answer_agreement("a limousine and a tea set", "a tea set")
    assert partial == pytest.approx(f1_score("a limousine and a tea set", ["a tea set"])) and 0 < partial < 1
    assert answer_agreement("paintings", "") == 0.0
    assert math.isnan(answer_agreement("paintings", None))


def test_each_answer_is_scored_by_its_agreement_with_the_second_reader(tiny_profile, tmp_path):
    first, other = profile_pair(tiny_profile, tmp_path)
    r = ArticleQA(load_profile(first)).predict_many(ARTICLE, [QUESTION], top_k=8)[0]
    alone = ArticleQA(load_profile(other)).predict_many(ARTICLE, [QUESTION], top_k=1)[0]
    assert r["second_opinion"] == alone["answers"][0]["answer"]
    agree = [f1_score(a["answer"], [r["second_opinion"]]) for a in r["answers"]]
    assert r["features"][FEATURES.index("agreement")] == pytest.approx(agree[0])
    p_null = 1 / (1 + np.exp(-(2.0 - 4.0 * agree[0])))
    assert r["no_answer_score"] == pytest.approx(p_null, abs=1e-5)
    for a, g in zip(r["answers"], agree):
        assert a["score"] == pytest.approx(min(1 / (1 + np.exp(-(4.0 * g - 2.0))), 1 - p_null), abs=1e-5)
    assert len(set(agree)) > 1, agree       # candidates agreeing more and less with the second reader


def test_the_second_reader_is_loaded_only_for_a_calibrator_that_reads_it(tiny_profile, tmp_path):
    first, _ = profile_pair(tiny_profile, tmp_path, calibrator=None)
    engine = ArticleQA(load_profile(first))
    r = engine.predict_many(ARTICLE, [QUESTION])[0]
    assert engine.reader.second_opinion is None and "second_opinion" not in r
    assert r["features"][FEATURES.index("agreement")] is None     # NaN in the row, None in JSON
    assert engine.qa_second_opinion() is not None       # what a calibrator being fitted asks for


def test_a_calibrator_reading_agreement_needs_a_second_opinion(tiny_profile, tmp_path):
    first, _ = profile_pair(tiny_profile, tmp_path, second=False)
    with pytest.raises(ModelLoadError, match="qa.second_opinion"):
        ArticleQA(load_profile(first)).predict_many(ARTICLE, [QUESTION])


def test_a_profile_cannot_name_itself_or_a_missing_profile(tiny_profile, tmp_path):
    first, _ = profile_pair(tiny_profile, tmp_path)
    raw = yaml.safe_load(open(first))
    for ref, message in (("first.yaml", "itself"), ("no-such-profile", "Unknown profile")):
        raw["qa"]["second_opinion"] = ref
        (tmp_path / "first.yaml").write_text(yaml.safe_dump(raw))
        with pytest.raises(ValueError, match=message):
            load_profile(tmp_path / "first.yaml")


def test_tune_rows_carry_the_agreement_of_the_second_reader(tiny_profile, tmp_path):
    """The contexts training.tune reads keep the second reader's answers, so every decoded row
    has its agreement and a calibrator can be fitted on it."""
    from models.squad import QAExample
    from training.tune import decode, read_contexts
    first, other = profile_pair(tiny_profile, tmp_path, calibrator=None)
    engine = ArticleQA(load_profile(first))
    engine.warm_up(summarizer=False)
    reader = engine.reader
    reader.second_opinion = engine.qa_second_opinion()
    questions = [QUESTION, "Who hosted a dinner?", "What did the leaders sign?", "When did the summit open?"]
    examples = [QAExample(f"q{i}", "summit", ARTICLE, q, ["paintings"], [0]) for i, q in enumerate(questions)]
    window_params, params = reader.sanitize(top_k=1)
    read = read_contexts(reader, examples, window_params)
    results = decode(reader, read, len(examples), params)
    alone = ArticleQA(load_profile(other)).predict_many(ARTICLE, questions, top_k=1)
    agree = np.array([r["features"][FEATURES.index("agreement")] for r in results], dtype=float)
    expected = [f1_score(r["answers"][0]["answer"], [a["answers"][0]["answer"]]) for r, a in zip(results, alone)]
    np.testing.assert_allclose(agree, expected)
    x = np.array([r["features"] for r in results], dtype=float)
    cal = Calibrator.fit(np.repeat(x, 5, axis=0), np.tile([1, 0, 1, 0, 1], len(x)), np.tile([0, 1, 0, 0, 1], len(x)),
                         use=FEATURES[:3] + ("agreement",))
    assert cal.needs_second_opinion and np.isfinite(cal.prob_right(x)).all()
