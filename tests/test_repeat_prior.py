"""The repeat prior (qa.repeat_penalty): spans that repeat the question's content words are
weighed down, so the nested span without them wins. Counting and factors on plain text; the
reader's use of them on the tiny random-weight reader."""
import math

import pytest
import yaml

from models.engine import ArticleQA
from models.profiles import load_profile
from models.spans import repeat_factors
from models.window_select import query_terms, question_term_count

QUESTION = "Which country, along with Russia, has provided political cover for Kim?"


def test_repeated_words_are_counted_as_bm25_matches_them():
    terms = set(query_terms(QUESTION))
    assert question_term_count(terms, "Russia, along with China") == 2      # russia, along; "with" is a stop word
    assert question_term_count(terms, "China") == 0
    assert question_term_count(terms, "RUSSIA and Russia's allies") == 2   # case aside, each word counts
    assert question_term_count(set(query_terms("Which gifts did they exchange?")), "two gifts") == 1   # plural
    assert question_term_count(set(), "Russia") == 0


def test_factors_fall_with_each_repeated_word_and_are_one_when_off():
    f = repeat_factors([0, 1, 2], 0.5)
    assert f[0] == 1.0 and math.isclose(f[1], math.exp(-0.5)) and math.isclose(f[2], math.exp(-1.0))
    assert list(repeat_factors([0, 3], 0.0)) == [1.0, 1.0]


ARTICLE = ("Russia, along with China, has provided political cover for Kim. Officials in Russia said the talks "
           "went well. The country hosted a parade for the Russian delegation. ") * 2


def test_reader_weighs_each_candidate_by_its_repeats(tiny_profile):
    reader = ArticleQA(load_profile(tiny_profile))._reader()
    terms = set(query_terms(QUESTION))
    plain = {(a["start"], a["end"]): a["span_score"] for a in reader.run(ARTICLE, [QUESTION], top_k=20)[0]["answers"]}
    weighed = reader.read(ARTICLE, [QUESTION], *reader.sanitize(top_k=20, repeat_penalty=2.0))[0]["answers"]
    common = [a for a in weighed if (a["start"], a["end"]) in plain and plain[(a["start"], a["end"])] > 1e-4]
    assert common and any(question_term_count(terms, a["answer"]) for a in common)
    for a in common:
        expected = plain[(a["start"], a["end"])] * math.exp(-2.0 * question_term_count(terms, a["answer"]))
        assert a["span_score"] == pytest.approx(expected, rel=1e-3, abs=2e-6), a["answer"]


def test_a_strong_penalty_answers_with_a_span_that_repeats_nothing(tiny_profile):
    reader = ArticleQA(load_profile(tiny_profile))._reader()
    terms = set(query_terms(QUESTION))
    plain = reader.run(ARTICLE, [QUESTION], top_k=20)[0]["answers"]
    # random weights make the spans arbitrary; with these the plain best repeats the question
    assert question_term_count(terms, plain[0]["answer"]) > 0, plain[0]["answer"]
    assert any(question_term_count(terms, a["answer"]) == 0 for a in plain)
    best = reader.read(ARTICLE, [QUESTION], *reader.sanitize(top_k=20, repeat_penalty=20.0))[0]["answers"][0]
    assert question_term_count(terms, best["answer"]) == 0, best["answer"]


def test_profile_refuses_a_penalty_out_of_range(tiny_profile, tmp_path):
    raw = yaml.safe_load(open(tiny_profile))
    raw.setdefault("qa", {})["repeat_penalty"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="repeat_penalty"):
        load_profile(path)
