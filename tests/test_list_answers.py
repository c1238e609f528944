"""List answers: MultiSpanQA's span-set metric on hand-computed cases, and the list tagger's pure
functions (labels, decoding, merging) on small fixtures."""
import numpy as np
import pytest

from eval.metrics import multispan_scores
from models.list_tagger import ListTagger, TaggerConfig, decode_tagged_spans, merge_tagged_spans, token_labels


def test_multispan_exact_and_partial_hand_computed():
    # question 1: gold {tea set, dagger, limo}; predicted {a tea set, the limo, Putin}
    # question 2: gold {Paris}; predicted {Paris, France}
    pred = [["a tea set", "the limo", "Putin"], ["Paris", "France"]]
    gold = [[["tea set"], ["dagger"], ["limo"]], [["Paris"]]]
    s = multispan_scores(pred, gold)
    # exact: predicted spans equal to a gold span 3 of 5 (tea set, limo, Paris); gold found 3 of 4
    assert s["em_p"] == pytest.approx(60.0) and s["em_r"] == pytest.approx(75.0)
    assert s["em_f1"] == pytest.approx(round(2 * 0.6 * 0.75 / 1.35 * 100, 2))
    assert s["pm_p"] == pytest.approx(60.0) and s["pm_r"] == pytest.approx(75.0)


def test_multispan_partial_credit_and_alternatives():
    # "naval officer's dagger" vs gold "dagger": token F1 = 2 * (1/3 * 1) / (1/3 + 1) = 0.5
    s = multispan_scores([["naval officer's dagger"]], [[["dagger"], ["limo"]]])
    assert s["em_p"] == 0.0 and s["em_r"] == 0.0
    assert s["pm_p"] == pytest.approx(50.0) and s["pm_r"] == pytest.approx(25.0)
    # a gold item with alternatives is found by any of them, once
    s = multispan_scores([["Aurus limo", "limo"]], [[["a Russian-made Aurus limo", "Aurus limo"]]])
    assert s["em_p"] == 50.0 and s["em_r"] == 100.0     # "limo" alone is none of its texts


def test_multispan_empty_prediction_counts_as_missed():
    s = multispan_scores([[], ["x"]], [[["a"], ["b"]], [["x"]]])
    assert s["em_p"] == 100.0 and s["em_r"] == pytest.approx(100 / 3, abs=0.01)
    assert multispan_scores([[]], [[["a"]]])["em_f1"] == 0.0


def test_token_labels_mark_items():
    text = "gifts: a tea set, a dagger and art."
    offsets = np.array([(0, 5), (5, 6), (7, 8), (9, 12), (13, 16), (16, 17), (18, 19), (20, 26), (27, 30),
                        (31, 34), (34, 35)])
    labels = token_labels(offsets, [(9, 16), (20, 26), (31, 34)])
    assert labels.tolist() == [0, 0, 0, 1, 2, 0, 0, 1, 0, 1, 0]
    assert text[9:16] == "tea set" and text[31:34] == "art"


def test_decode_tagged_spans_splits_runs_and_adjacent_items():
    text = "gifts: a tea set, a dagger and art."
    offsets = np.array([(0, 5), (5, 6), (7, 8), (9, 12), (13, 16), (16, 17), (18, 19), (20, 26), (27, 30),
                        (31, 34), (34, 35)])
    o, b, i = [1.0, 0, 0], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]
    probs = np.array([o, o, o, b, i, o, o, b, o, b, o])
    spans = decode_tagged_spans(probs, offsets, text, 0.5)
    assert [text[s:e] for s, e, _ in spans] == ["tea set", "dagger", "art"]
    assert spans[0][2] == pytest.approx(0.9)
    # two items side by side with no O between them: a B inside the run starts the second
    probs = np.array([o, o, o, b, b, o, o, o, o, o, o])
    assert [text[s:e] for s, e, _ in decode_tagged_spans(probs, offsets, text, 0.5)] == ["tea", "set"]
    # under the threshold nothing is an item; punctuation alone never is
    assert decode_tagged_spans(probs, offsets, text, 0.95) == []
    probs = np.array([o, b, o, o, o, o, o, o, o, o, o])
    assert decode_tagged_spans(probs, offsets, text, 0.5) == []


def test_merge_tagged_spans_across_windows():
    spans = [(10, 20, 0.6), (10, 20, 0.9), (15, 25, 0.7), (30, 35, 0.8), (0, 5, 0.55)]
    assert merge_tagged_spans(spans) == [(0, 5, 0.55), (10, 20, 0.9), (30, 35, 0.8)]


def test_tagger_saves_and_loads(tmp_path):
    import torch
    head = ListTagger(TaggerConfig(hidden_size=8, width=4, threshold=0.4))
    head.save(tmp_path, {"note": "test"})
    back = ListTagger.load(tmp_path)
    assert back.config.threshold == 0.4
    x, st, en, mask = torch.randn(1, 3, 8), torch.randn(1, 3), torch.randn(1, 3), torch.ones(1, 3, dtype=torch.bool)
    assert torch.allclose(head(x, st, en, mask), back(x, st, en, mask), atol=1e-2)
    assert ListTagger.load(tmp_path / "none") is None


@pytest.fixture()
def tiny_reader(tiny_profile):
    from dataclasses import replace

    from models.profiles import load_profile
    from models.qa import ExtractiveReader
    prof = load_profile(tiny_profile)
    reader = ExtractiveReader(replace(prof.qa, top_k=3), prof.resolve_model(prof.qa.model))
    reader.warm_up()
    return reader


def _tagging(reader, article: str, spans: list[tuple[int, int]], monkeypatch) -> None:
    """Give the tiny reader (random weights, so random tags) a tagger whose items are ``spans``: the
    reader's list path after the tagger (selection, scores, order, the result) runs for real."""
    reader.list_tagger = ListTagger(TaggerConfig(hidden_size=reader.model.config.hidden_size))
    items = sorted((s, e, 0.8 - 0.1 * i) for i, (s, e) in enumerate(spans))
    monkeypatch.setattr(type(reader), "_tagged_items", lambda self, *args: items)


QUESTION = "What gifts were exchanged?"
GIFTS = ["artworks depicting the Russian leader", "a tea set", "Russian-made Aurus limo"]


def _spans(article: str, words: list[str]) -> list[tuple[int, int]]:
    return [(article.index(w), article.index(w) + len(w)) for w in words]


def _best(reader, article: str) -> dict:
    return reader.run(article, [QUESTION])[0]


def test_list_answer_selects_every_tagged_item_in_article_order(tiny_reader, seed_article, monkeypatch):
    best = _best(tiny_reader, seed_article)       # the reader's own best span is one of the items
    spans = [(best["start"], best["end"])] + [sp for sp in _spans(seed_article, GIFTS)
                                              if sp[1] <= best["start"] or best["end"] <= sp[0]]
    _tagging(tiny_reader, seed_article, spans, monkeypatch)
    r = tiny_reader.run(seed_article, [QUESTION])[0]
    chosen = [a for a in r["answers"] if a["selected"]]
    assert sorted((a["start"], a["end"]) for a in chosen) == sorted(spans)
    assert [a["start"] for a in chosen] == sorted(a["start"] for a in chosen), "article order"
    for a in chosen:
        assert seed_article[a["start"]:a["end"]] == a["answer"]
        assert a["sentence"] and a["answer"] in a["sentence"]
        assert 0 <= a["score"] <= 1 - r["no_answer_score"] + 1e-6
    # the best span stays the answer (single-answer callers see no change)
    assert (r["answer"], r["start"]) == (best["answer"], best["start"])
    # the candidates not selected overlap no item
    for a in r["answers"]:
        if not a["selected"]:
            assert all(a["end"] <= c["start"] or c["end"] <= a["start"] for c in chosen)


def test_items_away_from_the_readers_answer_are_not_a_list(tiny_reader, seed_article, monkeypatch):
    best = _best(tiny_reader, seed_article)
    away = [sp for sp in _spans(seed_article, GIFTS) if sp[1] <= best["start"] or best["end"] <= sp[0]]
    assert len(away) >= 2
    _tagging(tiny_reader, seed_article, away, monkeypatch)
    r = tiny_reader.run(seed_article, [QUESTION])[0]
    chosen = [a for a in r["answers"] if a["selected"]]
    assert [(a["start"], a["end"]) for a in chosen] == [(best["start"], best["end"])]


def test_one_tagged_item_leaves_the_best_span_alone_selected(tiny_reader, seed_article, monkeypatch):
    _tagging(tiny_reader, seed_article, _spans(seed_article, ["a tea set"]), monkeypatch)
    r = tiny_reader.run(seed_article, [QUESTION])[0]
    chosen = [a for a in r["answers"] if a["selected"]]
    assert len(chosen) == 1 and chosen[0]["answer"] == r["answer"] == r["answers"][0]["answer"]


def test_list_or_best_needs_two_sure_items():
    from models.list_tagger import list_or_best
    items = [(0, 5, 0.9), (10, 15, 0.55), (20, 25, 0.8)]
    assert list_or_best(items, 0.0) == items
    assert list_or_best(items, 0.7) == [(0, 5, 0.9), (20, 25, 0.8)]
    assert list_or_best(items, 0.85) == [(0, 5, 0.9)]
    assert list_or_best([], 0.5) == []


def test_multispan_set_reads_every_gold_span_as_an_item():
    from eval.sets import data_dir, load_qa_set
    if not (data_dir() / "qa" / "multispanqa" / "dev.json").is_file():
        pytest.skip("the shared MultiSpanQA development half is not beside the repository")
    items = load_qa_set("multispan")
    assert len(items) == 304 and all(it.kind == "list" and len(it.list_answers) >= 2 for it in items)
    assert sum(len(it.list_answers) for it in items) <= 879
    first = items[0]
    for (text,) in first.list_answers:
        assert text in first.context
