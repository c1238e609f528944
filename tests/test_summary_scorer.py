"""The trained extractive summarizer: labels, selection rules, and the shipped scorer's quality."""
import json

import numpy as np
import pytest

from models.sentence_scorer import FEATURE_NAMES, SentenceScorer, headline_of, sentence_features
from models.summarize import candidate_sentences, fit_to_budget, select_within_budget
from models.text import split_sentences
from serve import summarize
from training.summary_data import (detokenize, extractive_labels, opening_key, oracle_labels, tokenized_article,
                                   tokenized_sentences)

REPO_SCORER = "models/summary_scorer"


def test_oracle_labels_pick_the_sentences_that_carry_the_reference():
    sents = ["The council approved the new bridge on Monday.",
             "Weather was mild across the region.",
             "The bridge will cost 40 million pounds and open in 2027.",
             "Local cafes reported a busy weekend."]
    ref = "Council approves new bridge costing 40 million pounds, to open in 2027."
    assert oracle_labels(sents, ref) == [1, 0, 1, 0]
    assert oracle_labels(sents, "Zebras gallop quickly, zigzag.") == [0, 0, 0, 0]


def test_extractive_labels_match_references_joined_without_spaces():
    article = "Headline\n\nFirst fact here is new. Second point was minor. Third fact closes it."
    sents = split_sentences(article)[1:]
    labels = extractive_labels(article, sents, "First fact here is new.Third fact closes it.")
    assert labels == [1, 0, 1]


def test_tokenized_articles_split_and_benchmark_overlap_is_found():
    art = "( cnn ) two cnn heroes are among the survivors . and they are struggling in the aftermath ."
    assert [len(s.text(art).split()) for s in tokenized_sentences(art)] == [11, 8]
    assert opening_key("(CNN) Two CNN heroes are among the survivors. And they are struggling in the aftermath.") == opening_key(art)


def test_tokenized_cnndm_text_is_put_back_into_prose():
    assert detokenize("he said `` we do n't -lrb- yet -rrb- know . '' it cost $ 5 , or 10 % .") == \
        'he said "we don\'t (yet) know." it cost $5, or 10%.'
    art = "london , england -lrb- cnn -rrb- -- the mayor 's plan was approved . `` it 's done , '' he said ."
    text, sents = tokenized_article(art)
    assert [s.text(text) for s in sents] == ["London, england (cnn) -- the mayor's plan was approved.",
                                             '"It\'s done," he said.']
    assert text == " ".join(s.text(text) for s in sents)
    dm = ("by . daily mail reporter . last updated at 7:37 am on 22nd june 2011 . published : . 05:29 est , "
          "30 july 2013 . | . a doctor who caused a pile-up walked free from court yesterday .")
    text, sents = tokenized_article(dm)
    assert [s.text(text) for s in sents] == ["A doctor who caused a pile-up walked free from court yesterday."]


def test_selection_honours_the_budget_order_and_redundancy():
    texts = ["a b c d e f g h i j", "k l m n o p q r s t", "u v w x y z a1 b1 c1 d1",
             "a b c d e f g h i j k"]            # repeats sentence 0's trigrams
    emb = np.eye(4)
    scores = np.array([0.8, 0.5, 0.1, 0.9])
    picked = select_within_budget(scores, emb, texts, max_words=20, redundancy=0.9)
    assert picked == [1, 3]                 # 3 first; 0 shares its trigrams; then 1; in article order
    assert 18 <= sum(len(texts[i].split()) for i in picked) <= 22
    assert select_within_budget(scores, emb, texts, max_words=20, redundancy=0.9, trigram_blocking=False) == [0, 3]
    close = np.eye(4)
    close[1] = close[3]                     # 1 says what 3 says (cosine 1)
    assert select_within_budget(scores, close, texts, max_words=20, redundancy=0.9) == [2, 3]
    assert select_within_budget(scores, emb, texts, max_words=20, redundancy=0.9, keep_first=True) == [0, 1]
    # a budget only a part of one sentence fits: the best sentence alone, then shortened
    assert select_within_budget(scores, emb, texts, max_words=3, redundancy=0.9) == [3]
    article = "one two three four five six."
    assert fit_to_budget(article, 0, len(article), 3) == (0, len("one two three"))


def test_headline_is_the_first_unpunctuated_line():
    art = "Ad sales boost Time Warner profit\n\nQuarterly profits at US media giant TimeWarner jumped 76%."
    assert headline_of(art, candidate_sentences(art)[0]) == "Ad sales boost Time Warner profit"
    assert headline_of("Quarterly profits jumped. More text here follows.", None) is None


def test_features_have_the_declared_layout():
    art = "Headline here\n\nThe first sentence is here. The second one follows it. A third closes."
    sents = candidate_sentences(art)
    emb = np.eye(len(sents), 8)
    f = sentence_features(art, sents, emb, None)
    assert f.shape == (len(sents), len(FEATURE_NAMES) + 8)
    assert f[0, FEATURE_NAMES.index("pos_0")] == 1 and f[1, FEATURE_NAMES.index("pos_1")] == 1


@pytest.fixture(scope="module")
def shipped():
    return SentenceScorer(REPO_SCORER)


def test_shipped_summarizer_on_the_seed_article(seed_article, shipped):
    s = summarize(seed_article, profile="embedded")
    assert s["method"] == "extractive-trained"
    words = len(s["summary"].split())
    assert 81 <= words <= 99, words
    junk = seed_article.index("Check Also")
    starts = [x["start"] for x in s["sentences"]]
    assert starts == sorted(starts)
    for x in s["sentences"]:
        assert seed_article[x["start"]:x["end"]] == x["text"] and x["end"] <= junk
    short = summarize(seed_article, max_words=40, profile="embedded")
    assert len(short["summary"].split()) <= 44


def test_shipped_summary_of_the_seed_article_beats_lead3_against_its_gold_summary(shipped):
    """The project's own article and gold summary (eval/gold): above LEAD-3 on ROUGE-1 and
    ROUGE-Lsum. Not on ROUGE-2: the scorer trained with CNN/DM ends the summary with two short
    sentences (tensions with the West, the sanctions) where the one before took Kim's "strongest
    ever treaty", which shares more word pairs with the gold (docs/decisions.md, "Summaries past
    LEAD-3 on news")."""
    from eval.metrics import rouge
    from eval.runner import lead3
    from eval.sets import load_summary_set
    from serve.api import get_engine
    item = load_summary_set("seed-summary")[0]
    ours = rouge(get_engine("embedded").summarize(item.article)["summary"], item.reference)
    lead = rouge(lead3(item.article), item.reference)
    assert ours["rouge1"] > lead["rouge1"] and ours["rougeLsum"] > lead["rougeLsum"], (ours, lead)


def test_shipped_scorer_beats_lead3_on_a_bbc_heldout_sample(shipped):
    """30 articles of the held-out BBC split (never trained or tuned on): the trained selection
    scores above LEAD-3 on ROUGE-1, ROUGE-2 and ROUGE-Lsum. The BBC articles are not ours to
    commit, so this runs where the shared data folder is (``$ARTICLE_QA_DATA`` or ../shared)."""
    from eval.metrics import rouge
    from eval.runner import lead3
    from eval.sets import data_dir, load_summary_set
    from serve.api import get_engine
    if not (data_dir() / "summarization" / "bbc_news_summary.jsonl").exists():
        pytest.skip(f"no BBC News Summary data at {data_dir()} (set ARTICLE_QA_DATA)")
    items = load_summary_set("bbc-test")[:30]
    engine = get_engine("embedded")
    ours = np.mean([list(rouge(engine.summarize(it.article)["summary"], it.reference).values()) for it in items], 0)
    lead = np.mean([list(rouge(lead3(it.article), it.reference).values()) for it in items], 0)
    assert (ours > lead).all(), (ours, lead)


def test_a_scorer_folder_without_weights_is_a_clear_error(tmp_path):
    from models.loading import ModelLoadError
    with pytest.raises(ModelLoadError, match="train one with python -m training.train_summarizer"):
        SentenceScorer(tmp_path)
    (tmp_path / "scorer.json").write_text(json.dumps({"feature_names": ["x"], "embedding_dim": 1, "mean": [0],
                                                      "std": [1], "hidden": [], "encoder": "e"}))
    from safetensors.numpy import save_file
    save_file({"layer0.weight": np.zeros((1, 2), np.float32), "layer0.bias": np.zeros(1, np.float32)},
              str(tmp_path / "scorer.safetensors"))
    with pytest.raises(ModelLoadError, match="other features"):
        SentenceScorer(tmp_path)


def test_numpy_context_scorer_computes_what_the_trained_torch_module_computes(tmp_path):
    """The shipped scorer runs in numpy; the transformer over sentences is trained in torch."""
    import torch
    from safetensors.numpy import save_file
    from training.train_summarizer import ContextScorer, scorer_tensors
    torch.manual_seed(0)
    n_in = len(FEATURE_NAMES)
    module = ContextScorer.build(n_in, width=16, layers=2, heads=4, dropout=0.0).eval()
    x = torch.randn(7, n_in)
    with torch.no_grad():
        want = module(x[None], torch.zeros(1, 7, dtype=torch.bool))[0].numpy()
        padded = module(torch.cat([x, torch.zeros(3, n_in)])[None],
                        torch.tensor([[False] * 7 + [True] * 3]))[0, :7].numpy()
    np.testing.assert_allclose(padded, want, atol=1e-5)       # padding is not attended to
    save_file({k: v.numpy() for k, v in scorer_tensors(module, 2).items()}, str(tmp_path / "scorer.safetensors"))
    (tmp_path / "scorer.json").write_text(json.dumps({
        "feature_names": list(FEATURE_NAMES), "embedding_dim": 0, "mean": [0.0] * n_in, "std": [1.0] * n_in,
        "hidden": [16], "encoder": "e", "use_embedding": False, "context_layers": 2, "heads": 4}))
    got = SentenceScorer(tmp_path).scores(x.numpy())
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.ptp(got) > 0.01                                   # the scores are not all the same
    # each sentence is scored in the light of the others: changing one moves the others' scores
    other = x.numpy().copy()
    other[6] += 3.0
    assert np.abs(SentenceScorer(tmp_path).scores(other)[:6] - got[:6]).max() > 1e-4
    # a scorer.json that names more blocks than the weights hold is refused when loaded
    from models.loading import ModelLoadError
    cfg = json.loads((tmp_path / "scorer.json").read_text())
    (tmp_path / "scorer.json").write_text(json.dumps({**cfg, "context_layers": 3}))
    with pytest.raises(ModelLoadError, match="do not match"):
        SentenceScorer(tmp_path)
