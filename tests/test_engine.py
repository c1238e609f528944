"""End to end on tiny random-weight models: real loading, windows, batched forward, decoding."""
import time
from pathlib import Path

import pytest
import yaml

from models.loading import ModelLoadError, load_pretrained
from models.text import InputError
from serve import predict, predict_many, summarize
from tests.conftest import long_article


def check_result(article, r):
    assert 0.0 <= r["score"] <= 1.0
    for a in r["answers"]:
        assert article[a["start"]:a["end"]] == a["answer"]
        assert a["answer"] == a["answer"].strip() and a["answer"]
        assert 0.0 <= a["score"] <= 1.0
        assert article[a["sentence_start"]:a["sentence_start"] + len(a["sentence"])] == a["sentence"]
        assert a["sentence_start"] <= a["start"] < a["sentence_start"] + len(a["sentence"])
    ranked = [a["span_score"] for a in r["answers"]]
    assert ranked == sorted(ranked, reverse=True)
    # share: each shown answer's share of the score of every span decoded for the question
    shares = [a["share"] for a in r["answers"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= 1 + 1e-5
    # no candidate is shown as likelier right than the article holding an answer at all
    assert all(a["score"] <= 1 - r["no_answer_score"] + 1e-6 for a in r["answers"])
    if r["answer"] is not None:
        assert article[r["start"]:r["end"]] == r["answer"]
        assert r["answers"][0]["answer"] == r["answer"]
        assert r["score"] == r["answers"][0]["score"]
    else:
        assert r["score"] == r["no_answer_score"]


def test_long_article_uses_many_windows_with_exact_offsets(tiny_profile):
    article = long_article(20000)
    r = predict(article, "What gift did the president give?", profile=tiny_profile, top_k=5)
    assert r["windows"] > 100
    assert r["answer"] is not None     # the tiny profile always answers (null_threshold -100)
    check_result(article, r)
    # spans come from all over the article, not only its first window
    assert len(r["answers"]) == 5
    # no answer cuts a word in half
    for a in r["answers"]:
        s, e = a["start"], a["end"]
        assert s == 0 or not (article[s - 1].isalnum() and article[s].isalnum())
        assert e == len(article) or not (article[e - 1].isalnum() and article[e].isalnum())


def test_predict_many_matches_predict_one_by_one(tiny_profile, seed_article):
    qs = ["What gifts were exchanged?", "Who visited North Korea?", "When was the agreement signed?"]
    many = predict_many(seed_article, qs, profile=tiny_profile)
    assert [m["question"] for m in many] == qs
    for q, m in zip(qs, many):
        one = predict(seed_article, q, profile=tiny_profile)
        check_result(seed_article, m)
        assert (one["start"], one["end"]) == (m["start"], m["end"])
        assert one["score"] == pytest.approx(m["score"], rel=1e-4, abs=1e-6)


def test_predict_is_deterministic(tiny_profile, seed_article):
    a = predict(seed_article, "What did Putin give Kim?", profile=tiny_profile)
    b = predict(seed_article, "What did Putin give Kim?", profile=tiny_profile)
    assert a == b


def test_non_ascii_article_offsets(tiny_profile):
    article = ("Der Präsident traf in Zürich ein. Он подписал договор «о дружбе». "
               "Les négociations ont duré trois jours à Genève. 北京是中国的首都。 😀 Emoji too.")
    r = predict(article, "Wo traf der Präsident ein?", profile=tiny_profile, top_k=5)
    check_result(article, r)


@pytest.mark.parametrize("article,question,msg", [
    ("", "Who?", "empty"), ("  \n ", "Who?", "empty"), ("Some text.", "", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "Who?", "UTF-8|binary"),
    ("word " * 100_001, "Who?", "limit"),
])
def test_bad_input_is_a_clear_value_error(tiny_profile, article, question, msg):
    t = time.time()
    with pytest.raises(ValueError, match=msg):
        predict(article, question, profile=tiny_profile)
    assert time.time() - t < 5


def test_too_many_questions(tiny_profile, seed_article):
    with pytest.raises(InputError, match="limit is 50"):
        predict_many(seed_article, ["Who?"] * 51, profile=tiny_profile)


def test_summary_of_long_article_is_map_reduced(tiny_profile):
    article = long_article(1500)
    s = summarize(article, profile=tiny_profile)
    assert s["method"] == "abstractive"
    assert s["chunks"] > 5 and s["rounds"] >= 2
    assert isinstance(s["summary"], str) and s["summary"].strip()


def test_profile_copy_with_another_qa_model_folder(tiny_profile, tmp_path, seed_article):
    prof = yaml.safe_load(Path(tiny_profile).read_text())
    prof["qa"]["model"] = str(Path(tiny_profile).parent / "tiny-qa")   # absolute folder
    prof["qa"]["max_seq_len"] = 96
    p = tmp_path / "copy.yaml"
    p.write_text(yaml.safe_dump(prof))
    r = predict(seed_article, "What did Putin give Kim?", profile=str(p))
    check_result(seed_article, r)
    assert r["windows"] > predict(seed_article, "What did Putin give Kim?", profile=tiny_profile)["windows"]


def test_uncached_hub_id_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(ModelLoadError, match="not-a-user/not-a-model.*python -m serve download"):
        load_pretrained("not-a-user/not-a-model", "qa")
    assert time.time() - t < 10


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="embedded"):
        predict("Some text.", "Who?", profile="nope")


def test_window_prior_reranks_spans_by_the_windows_match_with_the_question(tiny_profile, seed_article):
    """The prior multiplies each span's score by exp(-window_prior * (1 - r)), r = its window's BM25
    match over the best window's, so the best-matching window's spans keep their scores."""
    import math
    from dataclasses import replace
    from models.profiles import load_profile
    from models.qa import ExtractiveReader
    prof = load_profile(tiny_profile)
    plain = ExtractiveReader(replace(prof.qa, top_k=20, null_threshold=-1e9), prof.resolve_model(prof.qa.model))
    plain.warm_up()
    q = "What did Putin give Kim in Pyongyang?"
    base = plain.run(seed_article, [q])[0]
    primed = ExtractiveReader(replace(plain.settings, window_prior=3.0), plain.model_name)
    primed.tokenizer, primed.model, primed.template = plain.tokenizer, plain.model, plain.template
    w = primed.preprocess(seed_article, [q], primed.sanitize()[0])
    assert w.relevance is not None and w.relevance.max() == 1.0 and w.relevance.min() < 1.0
    with_prior = primed.run(seed_article, [q])[0]
    assert base["windows"] == with_prior["windows"] > 1
    scored = {(a["start"], a["end"]): a["score"] for a in base["answers"]}
    ratios = [a["score"] / scored[(a["start"], a["end"])] for a in with_prior["answers"]
              if (a["start"], a["end"]) in scored and scored[(a["start"], a["end"])] > 1e-4]
    assert ratios and all(math.exp(-3.0) - 1e-6 <= r <= 1 + 1e-6 for r in ratios)
    assert any(r < 0.999 for r in ratios), "spans outside the best-matching window are scored down"


def test_article_span_norm_scores_spans_with_one_softmax_over_all_windows(tiny_profile, seed_article):
    """With ``span_norm: article`` a span's score is exp(start + end logit) over the sums of
    exp(logits) across every window's article tokens: the engine's answer scores are checked
    against the raw logits of the model."""
    from dataclasses import replace

    import numpy as np

    from models.profiles import load_profile
    from models.qa import ExtractiveReader
    prof = load_profile(tiny_profile)
    reader = ExtractiveReader(replace(prof.qa, top_k=5, null_threshold=-1e9, span_norm="article",
                                      length_penalty=0.0), prof.resolve_model(prof.qa.model))
    reader.warm_up()
    q = "What did Putin give Kim in Pyongyang?"
    w = reader.preprocess(seed_article, [q], reader.sanitize()[0])
    start, end, _ = reader.forward(w)
    assert len(w) > 1
    zs = sum(np.exp(start[i][w.context_mask[i]].astype(np.float64)).sum() for i in range(len(w)))
    ze = sum(np.exp(end[i][w.context_mask[i]].astype(np.float64)).sum() for i in range(len(w)))
    answers = reader.run(seed_article, [q])[0]["answers"]
    best: dict[tuple[int, int], float] = {}     # each span's summed score over the windows that hold it
    for i in range(len(w)):
        off, m = w.offsets[i], w.context_mask[i]
        for a in answers:
            ts = [t for t in np.flatnonzero(m) if off[t, 0] == a["start"]]
            te = [t for t in np.flatnonzero(m) if off[t, 1] == a["end"]]
            if ts and te:
                p = float(np.exp(start[i][ts[0]] + end[i][te[-1]]) / (zs * ze))
                best[(a["start"], a["end"])] = best.get((a["start"], a["end"]), 0.0) + p
    checked = [a for a in answers if (a["start"], a["end"]) in best]
    assert checked
    for a in checked:
        assert a["score"] == pytest.approx(best[(a["start"], a["end"])], rel=1e-3, abs=1e-6)


def test_share_is_relative_to_all_decoded_span_scores(tiny_profile, seed_article):
    """A prior that scales every span down (here the window prior, up to e^-8) shrinks
    ``span_score`` but not ``share``, which is relative to every span decoded for the question."""
    from dataclasses import replace

    from models.profiles import load_profile
    from models.qa import ExtractiveReader
    prof = load_profile(tiny_profile)
    reader = ExtractiveReader(replace(prof.qa, top_k=5, null_threshold=-1e9, window_prior=8.0),
                              prof.resolve_model(prof.qa.model))
    reader.warm_up()
    q = "What did Putin give Kim in Pyongyang?"
    r = reader.run(seed_article, [q])[0]
    check_result(seed_article, r)
    top = r["answers"][0]
    assert top["share"] > top["span_score"]
    k = top["share"] / top["span_score"]        # one divisor per question (both are rounded to 1e-6)
    assert len(r["answers"]) > 1
    for a in r["answers"]:
        assert a["share"] == pytest.approx(a["span_score"] * k, abs=k * 1e-6 + 1e-6)


def test_not_found_never_shows_a_candidate_surer_than_the_no_answer(tiny_profile, seed_article):
    """The contradiction users saw ("Not found, 97%" above "Vietnam (97%)") cannot happen."""
    from models.profiles import load_profile
    from models.qa import ExtractiveReader
    prof = load_profile(tiny_profile)
    reader = ExtractiveReader(prof.qa, prof.resolve_model(prof.qa.model))
    reader.warm_up()
    r = reader.read(seed_article, ["What is the capital of France?"],
                    *reader.sanitize(top_k=5, null_threshold=1e9))[0]
    assert r["answer"] is None and r["answers"]
    assert r["score"] == r["no_answer_score"]
    assert all(a["score"] <= 1 - r["score"] + 1e-6 and not a["selected"] for a in r["answers"])


def test_batching_across_requests_gives_each_request_its_own_answers(tiny_profile, seed_article):
    """Requests sent at once from several threads are read in shared forward passes and get
    exactly what each would get alone; a bad request among them is refused alone."""
    import threading
    from dataclasses import replace

    from models.engine import ArticleQA
    from models.profiles import load_profile
    from models.text import InputError
    prof = load_profile(tiny_profile)
    alone = ArticleQA(prof)
    batched = ArticleQA(replace(prof, runtime=replace(prof.runtime, batch_wait_ms=200.0, batch_requests=8)))
    other = long_article(600)
    jobs = [(seed_article, ["What did Putin give Kim?"]), (other, ["Who signed the treaty?", "Where?"]),
            (seed_article, ["Who is Kim's sister?", "What gifts were exchanged?"]), ("", ["Who?"]),
            (other, ["What did the minister say?"])]
    want = [alone.predict_many(a, q) if a else None for a, q in jobs]
    got: list = [None] * len(jobs)
    calls = []
    original = batched._reader().run_batch

    def spy(requests, progress=None):
        calls.append(len(requests))
        return original(requests, progress)
    batched.reader.run_batch = spy

    def ask(i):
        try:
            got[i] = batched.predict_many(*jobs[i])
        except InputError as exc:
            got[i] = exc
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert max(calls) > 1, "some requests shared a batch"
    assert isinstance(got[3], InputError)
    for w, g in zip(want, got):
        if w is None:
            continue
        assert [(r["answer"], r["start"], r["end"]) for r in g] == [(r["answer"], r["start"], r["end"]) for r in w]
        assert [r["score"] for r in g] == pytest.approx([r["score"] for r in w], abs=1e-5)


def test_offline_profiles_never_look_up_the_hub(monkeypatch, tiny_profile):
    """`python -m serve` turns Gradio's analytics off always, and the hub off unless the profile
    names a hub model (issue: nothing leaves the machine that the user did not ask for)."""
    from serve.__main__ import keep_offline, needs_hub
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    assert not needs_hub("embedded") and not needs_hub(tiny_profile)
    assert needs_hub("hub")
    keep_offline("embedded")
    import os
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    keep_offline("hub")
    assert "HF_HUB_OFFLINE" not in os.environ
