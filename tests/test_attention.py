"""MPNet's attention through SDPA (models/attention.py) gives eager attention's outputs."""
from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")


def _model_and_batch(folder):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    model = AutoModelForQuestionAnswering.from_pretrained(folder, use_safetensors=True).eval()
    # two windows of different lengths: the shorter one is padded, so the mask matters
    enc = AutoTokenizer.from_pretrained(folder)(["Who gave what?", "What gifts were exchanged at the summit?"],
                                                ["Putin gave Kim a limo.", "A tea set and a dagger, and artworks."],
                                                padding=True, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any()
    return model, enc


def test_fused_attention_gives_eager_outputs(tiny_mpnet):
    from models.attention import FusedMPNetSelfAttention, fuse_attention
    model, enc = _model_and_batch(tiny_mpnet)
    with torch.inference_mode():
        eager = model(**enc, output_hidden_states=True)
        assert fuse_attention(model) == 2
        assert all(type(m.attention.attn) is FusedMPNetSelfAttention for m in model.mpnet.encoder.layer)
        fused = model(**enc, output_hidden_states=True)
    mask = enc["attention_mask"].bool()
    for name in ("start_logits", "end_logits"):
        a, b = getattr(eager, name)[mask], getattr(fused, name)[mask]
        assert torch.allclose(a, b, atol=1e-5), (name, (a - b).abs().max())
    for a, b in zip(eager.hidden_states, fused.hidden_states):
        assert torch.allclose(a[mask], b[mask], atol=1e-5)


def test_fused_attention_returns_attention_weights_when_asked(tiny_mpnet):
    from models.attention import fuse_attention
    model, enc = _model_and_batch(tiny_mpnet)
    with torch.inference_mode():
        eager = model(**enc, output_attentions=True)
        fuse_attention(model)
        fused = model(**enc, output_attentions=True)
    assert len(fused.attentions) == 2
    for a, b in zip(eager.attentions, fused.attentions):
        assert torch.allclose(a, b, atol=1e-6)


def test_copies_of_a_fused_model_stay_fused_and_bert_is_left_alone(tiny_mpnet, tiny_profile):
    from transformers import AutoModelForQuestionAnswering

    from models.attention import FusedMPNetSelfAttention, fuse_attention
    from models.profiles import load_profile
    model, _ = _model_and_batch(tiny_mpnet)
    fuse_attention(model)
    layer = copy.deepcopy(model.mpnet.encoder.layer[1])
    assert type(layer.attention.attn) is FusedMPNetSelfAttention
    prof = load_profile(tiny_profile)   # a BERT reader: its attention is transformers' own SDPA
    bert = AutoModelForQuestionAnswering.from_pretrained(prof.resolve_model(prof.qa.model), use_safetensors=True)
    assert fuse_attention(bert) == 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_reader_and_sentence_encoder_load_with_fused_attention(tiny_mpnet, dtype):
    from models.attention import FusedMPNetSelfAttention
    from models.runtime import load_reader_weights
    from models.sentence_encoder import SentenceEncoder
    _, model = load_reader_weights(str(tiny_mpnet), "cpu", "torch", dtype)
    kinds = {type(m.attention.attn) for m in model.mpnet.encoder.layer}
    assert kinds == {FusedMPNetSelfAttention}
    encoder = SentenceEncoder(str(tiny_mpnet))
    encoder.warm_up()
    assert {type(m.attention.attn) for m in encoder.model.encoder.layer} == {FusedMPNetSelfAttention}
    v = encoder.embed(["Putin gave Kim a limo.", "A tea set."])
    assert v.shape == (2, 32) and abs(float((v[0] ** 2).sum()) - 1.0) < 1e-4
