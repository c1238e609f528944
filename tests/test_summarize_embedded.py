"""The extractive summarizer of the embedded profile (packaged MiniLM encoder, trained sentence scorer),
and the centrality ranking a profile without a scorer uses."""
import numpy as np

from models.summarize import rank_sentences, select_sentences
from serve import summarize


def test_seed_summary_is_article_sentences_in_order(seed_article):
    s = summarize(seed_article, profile="embedded")
    assert s["method"] == "extractive-trained"
    sents = s["sentences"]
    assert 2 <= len(sents) <= 6
    starts = [x["start"] for x in sents]
    assert starts == sorted(starts)
    junk = seed_article.index("Check Also")
    for x in sents:
        assert seed_article[x["start"]:x["end"]] == x["text"]
        assert x["end"] <= junk
    assert s["summary"] == " ".join(x["text"] for x in sents)
    assert 81 <= len(s["summary"].split()) <= 99      # the 90-word budget, +-10%
    # the lead sentence carries the news and must be picked
    assert sents[0]["text"].startswith("Russian President Vladimir Putin and North Korean leader")


def test_shorter_summary_on_request(seed_article):
    short = summarize(seed_article, max_words=30, profile="embedded")
    assert len(short["summary"].split()) <= 33
    assert short["sentences"][0]["text"].startswith("Russian President Vladimir Putin")


def test_selection_skips_redundant_sentences():
    emb = np.array([[1, 0], [0.999, 0.0447], [0, 1]], dtype=float)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    scores = np.array([0.9, 0.8, 0.5])
    assert select_sentences(scores, emb, [10, 10, 10], 100, 3, redundancy=0.9) == [0, 2]
    assert select_sentences(scores, emb, [10, 10, 10], 15, 3, redundancy=0.9) == [0]


def test_lead_prior_breaks_ties():
    emb = np.ones((3, 2)) / np.sqrt(2)
    assert np.argmax(rank_sentences(emb, 0.3)) == 0
