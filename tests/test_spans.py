import pytest
"""Span search on hand-made logits: no model needed."""
import numpy as np

from models.spans import Candidate, article_norm_factors, has_answer, merge_candidates, select_list, to_candidates, window_spans

NEG = -10.0


def logits(n, peaks):
    x = np.full(n, NEG, dtype=np.float32)
    for i, v in peaks.items():
        x[i] = v
    return x


def test_best_span_is_inside_the_article_tokens():
    mask = np.array([[False, False, False, True, True, True, True, False]])   # [CLS] q [SEP] a a a a [SEP]
    start = logits(8, {1: 9.0, 4: 5.0})[None]   # strongest start sits on a question token
    end = logits(8, {2: 9.0, 5: 5.0})[None]
    spans, scores, null = window_spans(start, end, mask, max_answer_len=10, top_n=3)
    assert tuple(spans[0, 0]) == (4, 5)
    assert scores[0, 0] > 0.9
    for (s, e), sc in zip(spans[0], scores[0]):
        if sc > 0:
            assert mask[0, s] and mask[0, e] and s <= e


def test_maximum_answer_length_is_respected():
    mask = np.array([[False] + [True] * 20])
    start = logits(21, {2: 8.0})[None]
    end = logits(21, {18: 8.0, 5: 4.0})[None]   # the long span scores higher but is too long
    spans, scores, _ = window_spans(start, end, mask, max_answer_len=5, top_n=5)
    s, e = spans[0, 0]
    assert (s, e) == (2, 5)
    assert all(e - s < 5 for (s, e), sc in zip(spans[0], scores[0]) if sc > 0)


def test_null_wins_when_cls_dominates():
    mask = np.array([[False] + [True] * 6])
    start = logits(7, {0: 10.0, 3: 2.0})[None]
    end = logits(7, {0: 10.0, 4: 2.0})[None]
    spans, scores, null = window_spans(start, end, mask, 10, 3)
    assert null[0] > 0.99
    text = "aa bb cc dd ee ff"
    offsets = [np.array([[0, 0], [0, 2], [3, 5], [6, 8], [9, 11], [12, 14], [15, 17]])]
    cands = to_candidates(text, spans, scores, null, offsets, [0])
    best = merge_candidates(cands, text, 5)[0]
    assert not has_answer(best, 0.0)
    assert has_answer(best, -100.0)   # a permissive threshold answers anyway


def test_merge_across_windows_drops_overlapping_duplicates():
    text = "Putin gave Kim a limousine and a tea set."
    cands = [Candidate(0.6, 17, 26, 0, 0.1), Candidate(0.5, 17, 26, 1, 0.1),   # same place, two windows
             Candidate(0.4, 15, 26, 1, 0.1),                                   # overlaps the best
             Candidate(0.3, 33, 40, 1, 0.1)]                                   # elsewhere
    kept = merge_candidates(cands, text, 10)
    assert [(c.start, c.end) for c in kept] == [(17, 26), (33, 40)]
    assert [text[c.start:c.end] for c in kept] == ["limousine", "tea set"]
    assert kept[0].score == 1.0 and kept[0].window_score == 0.6    # 0.6 + 0.5, capped; best window kept


def test_evidence_from_overlapping_windows_adds_up():
    text = "tens of thousands of spectators"
    # "tens of thousands" is second in each window but first once both windows count
    cands = [Candidate(0.23, 0, 20, 0, 0.01), Candidate(0.337, 0, 17, 0, 0.01),
             Candidate(0.365, 0, 20, 1, 0.01), Candidate(0.356, 0, 17, 1, 0.01)]
    kept = merge_candidates(cands, text, 5)
    assert text[kept[0].start:kept[0].end] == "tens of thousands"
    assert kept[0].score == pytest.approx(0.693) and kept[0].window_score == pytest.approx(0.356)
    assert has_answer(kept[0], 0.0)


def test_offsets_are_widened_to_whole_words_and_exact_substrings():
    text = "Kim called it the “strongest ever treaty” between them."
    s = text.index("strongest") + 3          # a token boundary inside a word
    e = text.index("treaty") + 3
    offsets = [np.array([[0, 0], [s, e]])]
    spans = np.array([[[1, 1]]])
    cands = to_candidates(text, spans, np.array([[0.9]]), np.array([0.01]), offsets, [0])
    c = cands[0]
    assert text[c.start:c.end] == "strongest ever treaty"


def test_list_answers_keep_close_distinct_spans_only():
    cands = [Candidate(0.40, 0, 5, 0, 0.01), Candidate(0.30, 10, 15, 0, 0.01), Candidate(0.05, 20, 25, 0, 0.01)]
    chosen = select_list(cands, 0.5, 5)
    assert [c.start for c in chosen] == [0, 10]
    assert select_list(cands, 0.5, 1) == cands[:1]


def test_vectorised_search_matches_brute_force():
    rng = np.random.default_rng(0)
    w, t, L = 3, 12, 4
    start, end = rng.normal(size=(w, t)), rng.normal(size=(w, t))
    mask = np.zeros((w, t), dtype=bool)
    mask[:, 3:11] = True
    spans, scores, _ = window_spans(start, end, mask, L, 1)
    for i in range(w):
        allowed = mask[i].copy()
        allowed[0] = True
        ps = np.exp(start[i] - start[i][allowed].max()) * allowed
        pe = np.exp(end[i] - end[i][allowed].max()) * allowed
        ps, pe = ps / ps.sum(), pe / pe.sum()
        best = max(((ps[a] * pe[b], a, b) for a in range(t) for b in range(t)
                    if mask[i, a] and mask[i, b] and 0 <= b - a < L))
        assert tuple(spans[i, 0]) == (best[1], best[2])
        assert np.isclose(scores[i, 0], best[0])


def test_length_penalty_scales_span_scores_and_prefers_shorter_spans():
    mask = np.array([[False] + [True] * 12])
    start = logits(13, {2: 8.0})[None]
    end = logits(13, {9: 8.0, 3: 7.5})[None]   # the long span (2..9) is the more probable one
    spans, scores, _ = window_spans(start, end, mask, max_answer_len=12, top_n=3)
    assert tuple(spans[0, 0]) == (2, 9)
    raw = {tuple(s): sc for s, sc in zip(spans[0], scores[0])}
    spans_p, scores_p, _ = window_spans(start, end, mask, max_answer_len=12, top_n=3, length_penalty=0.2)
    assert tuple(spans_p[0, 0]) == (2, 3)
    got = {tuple(s): sc for s, sc in zip(spans_p[0], scores_p[0])}
    for span in [(2, 9), (2, 3)]:   # a span of n tokens is scaled by exp(-0.2 * (n - 1))
        assert np.isclose(got[span], raw[span] * np.exp(-0.2 * (span[1] - span[0])))
    one = logits(13, {5: 9.0})[None]   # a one-token answer keeps its probability
    _, s0, _ = window_spans(one, one, mask, 12, 1)
    _, s1, _ = window_spans(one, one, mask, 12, 1, length_penalty=1.0)
    assert np.isclose(s0[0, 0], s1[0, 0])


def test_article_normalisation_is_one_softmax_over_every_window():
    """Window span probabilities times the window's factor equal exp(s_i + e_j) over the sums of
    exp(start) and exp(end) across all windows' article tokens; a flat, low window no longer wins
    just because its own softmax has nothing better to put its mass on."""
    mask = np.array([[False, True, True, True, False], [False, True, True, False, False]])
    # window 0: high but spread logits; window 1: low ones, peaked on one span
    start = np.array([[5.5, 6.0, 5.0, 4.0, NEG], [-5.0, 2.0, -3.0, NEG, NEG]])
    end = np.array([[5.0, 5.5, 6.0, 4.0, NEG], [-5.0, -3.0, 2.0, NEG, NEG]])
    spans, scores, _ = window_spans(start, end, mask, max_answer_len=5, top_n=6)
    factors = article_norm_factors(start, end, mask)
    zs = sum(np.exp(start[w][mask[w]]).sum() for w in range(2))
    ze = sum(np.exp(end[w][mask[w]]).sum() for w in range(2))
    for w in range(2):
        for (i, j), sc in zip(spans[w], scores[w]):
            if sc > 0:
                assert sc * factors[w] == pytest.approx(np.exp(start[w, i] + end[w, j]) / (zs * ze))
    # in-window probabilities put window 1's best span above window 0's; over the article it is below
    assert scores[1, 0] > scores[0, 0]
    assert scores[1, 0] * factors[1] < scores[0, 0] * factors[0]
    one = article_norm_factors(start[:1], end[:1], mask[:1])
    assert one[0] >= 1.0      # one window: only [CLS] leaves the sums, the ranking is unchanged


def test_sentence_prior_keeps_the_most_similar_sentence_and_weighs_the_rest_down():
    from models.spans import sentence_prior_factors
    sims = np.array([0.5, 0.8, np.nan, 0.2])
    f = sentence_prior_factors(sims, 4.0)
    assert f[1] == pytest.approx(1.0)
    assert f[0] == pytest.approx(np.exp(4.0 * (0.5 - 0.8)))
    assert f[2] == pytest.approx(f[3])            # no sentence: as the least similar one
    assert np.all(f[[0, 3]] < 1.0) and f[3] < f[0]
    assert np.array_equal(sentence_prior_factors(sims, 0.0), np.ones(4))
    assert np.array_equal(sentence_prior_factors(np.array([np.nan, np.nan]), 4.0), np.ones(2))
    assert len(sentence_prior_factors(np.array([]), 4.0)) == 0


def test_punctuation_alone_is_never_a_candidate():
    from models.spans import to_candidates
    text = "Putin came . Kim smiled"
    offsets = [np.array([[0, 0], [0, 5], [6, 10], [11, 12], [13, 16], [17, 23]])]
    spans = np.array([[[3, 3], [1, 2]]])
    cands = to_candidates(text, spans, np.array([[0.6, 0.3]]), np.array([0.1]), offsets, [0])
    assert [text[c.start:c.end] for c in cands] == ["Putin came"]


def test_the_same_answer_in_several_places_is_one_candidate_with_its_other_places():
    """A repeated paragraph: "the tea set" three times and "Tea set." once are one answer, kept
    where it scores best, with the other places listed; a different answer stays a candidate."""
    from models.spans import Candidate, merge_candidates
    para = "Putin gave Kim the tea set. "
    text = para * 3 + "Tea set. A dagger."
    at = [i for i in range(len(text)) if text.startswith("the tea set", i)]
    cands = [Candidate(0.03, at[1], at[1] + 11, 1, 0.1), Candidate(0.02, at[0], at[0] + 11, 0, 0.1),
             Candidate(0.02, at[2], at[2] + 11, 2, 0.1), Candidate(0.01, len(para) * 3, len(para) * 3 + 8, 3, 0.1),
             Candidate(0.015, text.index("A dagger"), len(text) - 1, 3, 0.1)]
    kept = merge_candidates(cands, text, 5)
    assert [text[c.start:c.end] for c in kept] == ["the tea set", "A dagger"]
    assert kept[0].start == at[1] and sorted(kept[0].places) == [(at[0], at[0] + 11), (at[2], at[2] + 11),
                                                                   (len(para) * 3, len(para) * 3 + 8)]
    assert kept[1].places == []


def test_answer_key():
    from models.text import answer_key
    assert answer_key("The tea set.") == answer_key("tea  set") == "tea set"
    assert answer_key(".") == answer_key("“”") == ""
    assert answer_key("Kim Yo Jong") != answer_key("Kim")
