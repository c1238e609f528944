"""Issue 6 machinery: article tokenized once, windows cut from its tokens, BM25 window selection,
int8 quantization, the fast profile. Windows must equal the tokenizer's own overflow windows."""
from pathlib import Path

import re

import numpy as np
import pytest
import yaml
from transformers import AutoTokenizer

from models.window_select import WordIndex, best_windows, bm25_scores, query_terms
from models.windows import (PairTemplate, build_windows, encode_windows, question_ids, tokenize_article,
                            window_ranges)
from models.engine import ArticleQA
from models.profiles import load_profile
from tests.conftest import long_article

QUESTIONS = ["What did Putin give Kim?", "Who?", "word " * 80, "When and where was the summit, and why?"]


def tokenizers(tiny_profile):
    folder = Path(tiny_profile).parent
    return [AutoTokenizer.from_pretrained(str(folder / "tiny-qa")),     # BERT: [CLS] q [SEP] c [SEP]
            AutoTokenizer.from_pretrained(str(folder / "tiny-bart"))]   # BART: <s> q </s></s> c </s>


@pytest.mark.parametrize("max_len,stride", [(128, 32), (96, 40), (200, 64)])
def test_windows_from_article_tokens_equal_tokenizer_overflow(tiny_profile, seed_article, max_len, stride):
    for tok in tokenizers(tiny_profile):
        for article in (seed_article, "One short sentence.", seed_article[:700]):
            ref = encode_windows(tok, QUESTIONS, [article] * len(QUESTIONS), max_len, stride, 32)
            got = build_windows(PairTemplate.from_tokenizer(tok), question_ids(tok, QUESTIONS, 32),
                                tokenize_article(tok, article), max_len, stride)
            assert got.input_ids == ref.input_ids
            assert got.token_type_ids == ref.token_type_ids
            assert all((a == b).all() for a, b in zip(got.offsets, ref.offsets))
            assert all((a == b).all() for a, b in zip(got.context_mask, ref.context_mask))
            assert got.sample.tolist() == ref.sample.tolist()


def test_bart_template_has_no_token_types(tiny_profile):
    bert, bart = tokenizers(tiny_profile)
    assert PairTemplate.from_tokenizer(bert).has_types
    t = PairTemplate.from_tokenizer(bart)
    assert not t.has_types and len(t.middle) == 2 and t.specials == 4


def test_window_ranges_cover_every_token_with_the_overlap():
    r = window_ranges(1000, 300, 100)
    assert r[0] == (0, 300) and r[-1][1] == 1000
    assert all(b[0] == a[0] + 200 for a, b in zip(r, r[1:]))
    assert window_ranges(10, 300, 100) == [(0, 10)]
    assert window_ranges(0, 300, 100) == [(0, 0)]
    with pytest.raises(ValueError, match="doc_stride"):
        window_ranges(1000, 100, 100)


def test_query_terms_drop_stop_words_and_plurals():
    assert query_terms("What gifts were exchanged between the leaders?") == ["gift", "exchanged", "leader"]
    assert query_terms("Who is he?") == []


def test_bm25_prefers_the_window_with_the_rare_question_words():
    article = "Alpha beta gamma. " * 30 + "The limousine was a gift to Kim. " + "Delta epsilon. " * 30
    index = WordIndex.build(article)
    cut = article.index("The limousine")
    spans = np.array([[0, cut], [cut, cut + 40], [cut + 40, len(article)]])
    s = bm25_scores(index, spans, "Which limousine was the gift?")
    assert s.argmax() == 1 and s[0] == 0 and s[2] == 0
    assert best_windows(s, 1).tolist() == [1]
    assert best_windows(np.zeros(5), 2).tolist() == [0, 1]          # no match: the article's start
    assert best_windows(s, 0).tolist() == [0, 1, 2]                  # 0 = keep every window
    assert bm25_scores(index, spans, "Who is he?").tolist() == [0, 0, 0]


def profile_copy(tiny_profile, tmp_path, **qa) -> str:
    prof = yaml.safe_load(Path(tiny_profile).read_text())
    prof["qa"]["model"] = str(Path(tiny_profile).parent / "tiny-qa")
    prof["summarizer"]["model"] = str(Path(tiny_profile).parent / "tiny-bart")
    prof["qa"].update(qa)
    p = tmp_path / "copy.yaml"
    p.write_text(yaml.safe_dump(prof))
    return str(p)


def test_window_selection_reads_only_the_best_windows(tiny_profile, tmp_path):
    article = long_article(5000)
    engine = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path, max_windows=3)))
    full = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path)))
    q = "Which limousine gift did the president give?"
    r, f = engine.predict_many(article, [q])[0], full.predict_many(article, [q])[0]
    assert r["windows"] == 3 and f["windows"] > 20
    assert r["windows_in_article"] == f["windows_in_article"] == f["windows"]     # what was left unread is said
    assert article[r["start"]:r["end"]] == r["answer"]
    # the selected windows are the ones BM25 ranks first, and the answer comes from one of them
    reader = engine.reader
    w = reader.preprocess(article, [q], reader.sanitize()[0])
    spans = [(o[m][0, 0], o[m][-1, 1]) for o, m in zip(w.offsets, w.context_mask)]
    assert any(a <= r["start"] and r["end"] <= b for a, b in spans)


def test_windows_matching_far_below_the_best_are_not_read(tiny_profile, tmp_path):
    """qa.min_window_relevance: of the windows the budget allows, only those whose BM25 match is
    at least that share of the best window's are read; the best one always; a question matching
    no word of the article reads its budget from the start, as before."""
    article = long_article(5000)
    q = "Which limousine gift did the president give?"
    engine = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path, max_windows=40, min_window_relevance=0.9,
                                                 reread_below=0.0)))     # keep the tiny reader's unsure answers
    r = engine.predict_many(article, [q])[0]
    reader = engine.reader
    scored = reader.preprocess(article, [q], reader.sanitize(max_windows=10**6, min_window_relevance=0.0)[0])
    best40 = np.sort(scored.relevance)[::-1][:40]
    assert r["windows"] == int(np.sum(best40 >= 0.9)) and 1 <= r["windows"] < 40, scored.relevance
    read = reader.preprocess(article, [q], reader.sanitize()[0])
    assert read.relevance.min() >= 0.9 and read.relevance.max() == 1.0
    assert article[r["start"]:r["end"]] == r["answer"]
    assert any(o[m][0, 0] <= r["start"] and r["end"] <= o[m][-1, 1] for o, m in zip(read.offsets, read.context_mask))
    unmatched = engine.predict_many(article, ["Xyzzy plugh?"])[0]
    assert unmatched["windows"] == 40


def test_a_question_refused_on_its_best_windows_is_read_over_its_whole_budget(tiny_profile, tmp_path):
    """"Not in the article" (or an unsure answer) is given only after the whole budget was read: a question refused on
    the windows that match it best is read again over every window qa.max_windows allows, each
    window read once, alone or batched with other requests."""
    article = long_article(5000)
    q = "Which limousine gift did the president give?"
    engine = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path, max_windows=40, min_window_relevance=0.9,
                                                 null_threshold=1e9)))       # the tiny reader then refuses
    engine.warm_up(qa=True, summarizer=False)
    reader = engine.reader
    best = reader.preprocess(article, [q], reader.sanitize()[0])
    assert 1 <= len(best) < 40
    passes = []
    real = reader.forward
    reader.forward = lambda w, *a, **k: passes.append(len(w)) or real(w, *a, **k)
    r = reader.run(article, [q])[0]
    assert r["answer"] is None and r["windows"] == 40
    assert passes == [len(best), 40 - len(best)]
    whole = reader.read(article, [q], *reader.sanitize(min_window_relevance=0.0))[0]
    assert r["no_answer_score"] == pytest.approx(whole["no_answer_score"], abs=1e-6)
    assert [a["answer"] for a in r["answers"]] == [a["answer"] for a in whole["answers"]]
    passes.clear()
    (batched,), _ = reader.run_batch([(article, [q], None), ("A short one. Kim drove the limousine.", [q], None)])
    assert batched["windows"] == 40 and batched["no_answer_score"] == pytest.approx(r["no_answer_score"], abs=1e-6)
    # an answer below qa.reread_below is re-read the same way; one above it is kept
    sure = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path, max_windows=40, min_window_relevance=0.9,
                                               reread_below=0.0)))
    unsure = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path, max_windows=40, min_window_relevance=0.9,
                                                 reread_below=1.0)))
    kept, reread = sure.predict_many(article, [q])[0], unsure.predict_many(article, [q])[0]
    assert kept["answer"] is not None and kept["score"] < 1.0       # the tiny reader always answers, unsure
    assert kept["windows"] == len(best) and reread["windows"] == 40


def test_windows_in_article_survives_cross_request_batching(tiny_profile, tmp_path, seed_article):
    """Requests read in the same forward passes (``run_batch``) each report their own article's
    window count, budgeted or not."""
    engine = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path, max_windows=3)))
    engine.warm_up(qa=True, summarizer=False)
    long_text, q = long_article(5000), "Which limousine gift did the president give?"
    alone = [engine.reader.run(a, [q])[0] for a in (long_text, seed_article)]
    both = engine.reader.run_batch([(long_text, [q], None), (seed_article, [q], None)])
    for one, (batched,) in zip(alone, both):
        assert (batched["windows"], batched["windows_in_article"]) == (one["windows"], one["windows_in_article"])
    assert alone[0]["windows"] == 3 < alone[0]["windows_in_article"]
    whole = engine.reader.read(seed_article, [q], *engine.reader.sanitize(max_windows=0))[0]
    assert alone[1]["windows_in_article"] == whole["windows"] == whole["windows_in_article"]


def test_article_is_tokenized_once_for_many_calls(tiny_profile, tmp_path, seed_article, monkeypatch):
    engine = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path)))
    engine.warm_up(summarizer=False)
    calls = []
    import models.qa as qa
    real = qa.tokenize_article
    monkeypatch.setattr(qa, "tokenize_article", lambda tok, a: calls.append(len(a)) or real(tok, a))
    first = engine.predict_many(seed_article, ["What did Putin give Kim?", "Who visited?"])
    again = engine.predict_many(seed_article, ["What did Putin give Kim?"])
    engine.predict_many("Another article. It is short.", ["Who?"])
    assert calls == [len(seed_article), len("Another article. It is short.")]
    assert again[0]["answer"] == first[0]["answer"] and again[0]["score"] == first[0]["score"]


def test_int8_quantization_replaces_linear_layers_and_still_answers(tiny_profile, tmp_path, seed_article):
    import torch
    engine = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path), {"runtime": {"dtype": "int8"}}))
    r = engine.predict_many(seed_article, ["What did Putin give Kim?"])[0]
    assert seed_article[r["start"]:r["end"]] == r["answer"]
    kinds = {type(m).__module__ for m in engine.reader.model.modules()}
    assert any("quantized" in k for k in kinds)
    assert not any(type(m) is torch.nn.Linear for m in engine.reader.model.modules())


def test_unknown_dtype_is_a_clear_error(tiny_profile, tmp_path):
    with pytest.raises(ValueError, match="runtime.dtype must be"):
        load_profile(profile_copy(tiny_profile, tmp_path), {"runtime": {"dtype": "int4"}})


def test_fast_profile_loads_and_reads_fewer_windows(seed_article):
    fast = load_profile("fast")
    assert fast.qa.max_windows and fast.qa.max_seq_len <= load_profile("embedded").qa.max_seq_len
    r = ArticleQA(fast).predict_many(seed_article, ["What did Putin give Kim?"])[0]
    assert r["windows"] == fast.qa.max_windows
    assert r["answer"] is None or seed_article[r["start"]:r["end"]] == r["answer"]


def test_memory_release_runs_after_each_request(tiny_profile, tmp_path, seed_article, monkeypatch):
    import models.engine
    from models.memory import limit_arenas, release_free_memory
    calls = []
    monkeypatch.setattr(models.engine, "release_free_memory", lambda: calls.append(1) or True)
    engine = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path)))
    engine.predict_many(seed_article, ["Who?"])
    engine.summarize(seed_article)
    assert len(calls) == 2
    engine.profile.runtime.release_memory = False
    engine.predict_many(seed_article, ["Who?"])
    assert len(calls) == 2
    import sys
    if sys.platform.startswith("linux"):          # glibc: both calls take effect
        assert limit_arenas(2) is True
        assert isinstance(release_free_memory(), bool)


def test_memory_is_released_only_when_no_request_waits(tiny_profile, tmp_path, seed_article, monkeypatch):
    import threading
    import time as _time

    import models.engine
    calls = []
    monkeypatch.setattr(models.engine, "release_free_memory", lambda: calls.append(1) or True)
    engine = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path)))
    engine.warm_up(summarizer=False)
    worker = threading.Thread(target=engine.predict_many, args=(seed_article, ["Who?"]))
    with engine._running():              # a request in progress ...
        worker.start()                   # ... and one that waits for it
        while engine._waiting < 2:
            _time.sleep(0.01)
    worker.join()
    assert len(calls) == 1               # only the last one out released memory


def test_core_relevance_counts_a_match_in_two_windows_overlap_once(tiny_profile, tmp_path):
    """qa.core_relevance: windows are compared on their cores (less half the overlap at each
    inner edge), which tile the article; a question whose words sit in the overlap of two
    windows reads one of them, where whole-window matching reads both."""
    from models.window_select import context_spans
    article = " ".join(f"w{i}" for i in range(600)) + "."
    plain = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path, max_windows=8, min_window_relevance=0.9,
                                                reread_below=0.0)))
    plain.warm_up(qa=True, summarizer=False)
    reader = plain.reader
    every = reader.preprocess(article, ["Where is w1?"], reader.sanitize(max_windows=0, min_window_relevance=0.0)[0])
    rows = np.arange(len(every))
    whole = context_spans(every, rows)
    cores = context_spans(every, rows, reader.settings.doc_stride // 2)
    assert len(rows) > 4 and cores[0, 0] == whole[0, 0] and cores[-1, 1] == whole[-1, 1]
    words = [(m.start(), m.group()) for m in re.finditer(r"w\d+", article)]
    for a, b in zip(cores[:-1], cores[1:]):     # no overlap, no word left out
        assert a[1] <= b[0] and not any(a[1] < s < b[0] for s, _ in words)
    # a word in the middle of the overlap of windows 2 and 3
    lo, hi = whole[3, 0], whole[2, 1]
    word = min((p for p in words if lo <= p[0] < hi), key=lambda p: abs(p[0] - (lo + hi) / 2))[1]
    q = f"Where is {word}?"
    core = ArticleQA(load_profile(profile_copy(tiny_profile, tmp_path, max_windows=8, min_window_relevance=0.9,
                                               reread_below=0.0, core_relevance=True)))
    assert plain.predict_many(article, [q])[0]["windows"] == 2
    r = core.predict_many(article, [q])[0]
    assert r["windows"] == 1 and r["windows_in_article"] == len(rows)
