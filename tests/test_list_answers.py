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


def _mpnet_states(folder):
    """The tiny MPNet, a padded batch of two windows, its hidden states and attention mask."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    model = AutoModelForQuestionAnswering.from_pretrained(folder, use_safetensors=True).eval()
    enc = AutoTokenizer.from_pretrained(folder)(["Who gave what?", "What gifts were exchanged at the summit?"],
                                                ["Putin gave Kim a limo.", "A tea set and a dagger."],
                                                padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return model, out.hidden_states, enc["attention_mask"]


def _lora_tagger(model, seed: int = 1) -> ListTagger:
    import torch
    torch.manual_seed(seed)
    tagger = ListTagger(TaggerConfig(hidden_size=32, width=4, encoder_layers=1, lora_rank=2), model.base_model.encoder)
    with torch.no_grad():
        for name, p in tagger.layers.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return tagger.eval()


def test_tagger_layers_start_as_the_readers_top_layer(tiny_mpnet):
    """With a zero update, the tagger's copy of the top layer over the states from below it gives
    the reader's last states (padding not attended to); the reader's own layers are untouched."""
    import torch
    model, states, mask = _mpnet_states(tiny_mpnet)
    assert mask[0].sum() < mask.shape[1], "the first window is padded"
    tagger = ListTagger(TaggerConfig(hidden_size=32, encoder_layers=1, lora_rank=2), model.base_model.encoder).eval()
    with torch.no_grad():
        got = tagger.encode(states[-2], mask)
    keep = mask.bool()
    assert torch.allclose(got[keep], states[-1][keep], atol=1e-5)
    # a non-zero update changes the tagger's states, not the reader's layer
    changed = _lora_tagger(model)
    with torch.no_grad():
        assert not torch.allclose(changed.encode(states[-2], mask)[keep], states[-1][keep], atol=1e-3)
        assert torch.allclose(model(**_tokens(tiny_mpnet), output_hidden_states=True).hidden_states[-1][0],
                              states[-1][0][: _tokens(tiny_mpnet)["input_ids"].shape[1]], atol=1e-5)


def _tokens(folder):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(folder)(["Who gave what?"], ["Putin gave Kim a limo."], return_tensors="pt")


def test_tagger_layers_save_load_and_merge(tiny_mpnet, tmp_path):
    """Saved as the low-rank update alone; loaded over the reader's encoder, merged into plain
    layers that give the unmerged tagger's states; a mismatch is a clear error."""
    import json

    import torch
    model, states, mask = _mpnet_states(tiny_mpnet)
    tagger = _lora_tagger(model)
    tagger.save(tmp_path)
    from safetensors import safe_open
    with safe_open(str(tmp_path / "list_tagger.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any(".lora_A" in k for k in keys) and not any(".base." in k for k in keys)
    back = ListTagger.load(tmp_path, model.base_model.encoder)
    assert not any("LoRA" in type(m).__name__ for m in back.modules())
    keep = mask.bool()
    with torch.no_grad():
        assert torch.allclose(back.encode(states[-2], mask)[keep], tagger.encode(states[-2], mask)[keep], atol=1e-2)
    with pytest.raises(ValueError, match="reader's encoder"):
        ListTagger.load(tmp_path)
    cfg = json.loads((tmp_path / "list_tagger.json").read_text())
    cfg["config"]["lora_rank"] = 3
    (tmp_path / "list_tagger.json").write_text(json.dumps(cfg))
    with pytest.raises(Exception, match="size mismatch|does not match"):
        ListTagger.load(tmp_path, model.base_model.encoder)


def test_reader_feeds_its_tagger_the_tagger_layers_states(tiny_mpnet, tiny_profile, tmp_path, seed_article):
    """A tagger saved beside the reader's weights with layers of its own is loaded with them, and
    the reader's forward gives it those layers' states, not the reader's last states."""
    import shutil
    from dataclasses import replace

    import torch

    from models.profiles import load_profile
    from models.qa import ExtractiveReader
    folder = tmp_path / "reader"
    shutil.copytree(tiny_mpnet, folder)
    model, _, _ = _mpnet_states(tiny_mpnet)
    tagger = _lora_tagger(model)
    tagger.save(folder)
    prof = load_profile(tiny_profile)
    reader = ExtractiveReader(replace(prof.qa, sentence_prior=0.0, max_seq_len=128, doc_stride=32), str(folder))
    reader.warm_up()
    assert reader.list_tagger is not None and reader.list_tagger.layers is not None
    wparams, _ = reader.sanitize()
    windows = reader.preprocess(seed_article, [QUESTION], wparams)
    assert len(windows) > 1
    _, _, states = reader.forward(windows)
    for w in (0, len(windows) - 1):
        ids = torch.tensor([windows.input_ids[w]])
        with torch.no_grad():
            hs = reader.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True).hidden_states
            want = reader.list_tagger.encode(hs[-2], torch.ones_like(ids))[0]
            trained = tagger.encode(hs[-2], torch.ones_like(ids))[0]   # before its float16 file
        assert np.allclose(states[w], want.numpy(), atol=1e-4)
        assert np.abs(states[w] - trained.numpy()).max() < 0.05
        assert not np.allclose(states[w], hs[-1][0].numpy(), atol=1e-3)


@pytest.mark.parametrize("layers", [0, 1])
def test_training_the_tagger_learns_items_and_leaves_the_reader(tiny_mpnet, layers):
    """``train_head`` fits the head (and, with encoder layers, the low-rank update) on cached
    windows until the labelled item is tagged, and the reader's own top layer keeps its weights."""
    import torch

    from training.train_list_tagger import predict_spans, train_head
    model, states, mask = _mpnet_states(tiny_mpnet)
    before = {k: v.clone() for k, v in model.base_model.encoder.layer[-1].state_dict().items()}
    context = "Putin gave Kim a limo."
    n = int(mask[0].sum())
    cmask = np.zeros(n, dtype=bool)
    cmask[n - 8:n - 1] = True                       # the article's tokens: before the final separator
    offsets = np.array([(0, 5), (6, 10), (11, 14), (15, 16), (17, 21), (21, 22), (22, 22)][:cmask.sum()])
    labels = token_labels(offsets, [(17, 21)])
    window = {"hidden": states[-2][0, :n].to(torch.float16), "context": cmask,
              "start": np.zeros(n, np.float32), "end": np.zeros(n, np.float32), "offsets": offsets,
              "labels": labels}
    example = {"context": context, "windows": [window]}
    config = TaggerConfig(hidden_size=32, width=8, encoder_layers=layers, lora_rank=2, threshold=0.5)
    tagger = train_head([example] * 8, config, epochs=20, seed=0, lr=1e-2, encoder=model.base_model.encoder,
                        lora_lr=1e-2)
    assert [context[s:e] for s, e, _ in predict_spans(tagger, example, 0.5)] == ["limo"]
    if layers:
        assert any(float(p.detach().abs().max()) > 0 for k, p in tagger.layers.named_parameters() if "lora_B" in k)
    else:
        assert tagger.layers is None
    after = model.base_model.encoder.layer[-1].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_tagger_with_layers_beside_a_reader_it_does_not_fit_is_a_clear_load_error(tiny_mpnet, tiny_profile, tmp_path):
    """A tagger file naming encoder layers beside a BERT reader (the tagger copies MPNet layers
    only) stops the reader's loading with a message naming the tagger, not a traceback."""
    import shutil
    from dataclasses import replace

    from models.loading import ModelLoadError
    from models.profiles import load_profile
    from models.qa import ExtractiveReader
    prof = load_profile(tiny_profile)
    folder = tmp_path / "bert_reader"
    shutil.copytree(prof.resolve_model(prof.qa.model), folder)
    model, _, _ = _mpnet_states(tiny_mpnet)
    _lora_tagger(model).save(folder)
    reader = ExtractiveReader(replace(prof.qa, sentence_prior=0.0), str(folder))
    with pytest.raises(ModelLoadError, match="list tagger"):
        reader.warm_up()
