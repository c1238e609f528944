"""Tiny random-weight models for tests, built from configs and saved with ``save_pretrained``,
so the real loading, windowing, decoding and generation code runs fast and deterministically."""
from __future__ import annotations

import shutil
from pathlib import Path

from eval.random_models import build_random_bart, build_random_qa
from models.examples import EXAMPLE_ARTICLE as SEED_ARTICLE  # noqa: F401  (the fixtures' article)

REPO = Path(__file__).resolve().parent.parent


def build_tiny_qa(folder: Path, seed: int = 0) -> Path:
    """A 2-layer BERT QA model with the packaged MiniLM (uncased WordPiece) tokenizer."""
    return build_random_qa(folder, seed, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64)


def build_tiny_mpnet(folder: Path, seed: int = 0) -> Path:
    """A 2-layer MPNet QA model with the shipped reader's tokenizer (relative position bias and
    all, as the `embedded` reader)."""
    import torch
    from transformers import MPNetConfig, MPNetForQuestionAnswering
    torch.manual_seed(seed)
    cfg = MPNetConfig(vocab_size=30527, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64)
    MPNetForQuestionAnswering(cfg).eval().save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(REPO / "models" / "mpnet_qa" / name, folder / name)
    return folder


def build_tiny_bart(folder: Path, corpus: str, seed: int = 0) -> Path:
    """A 1-layer BART with a byte-level BPE tokenizer trained on ``corpus`` here, and an encoder
    input of 64 tokens so that an article needs several chunks."""
    return build_random_bart(folder, corpus, vocab_size=600, max_positions=64, seed=seed, d_model=32,
                             encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                             decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64)


def build_tiny_profile(folder: Path) -> Path:
    """configs/tiny.yaml copied into ``folder`` with its models built beside it; returns the YAML path."""
    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_qa(folder / "tiny-qa")
    build_tiny_bart(folder / "tiny-bart", SEED_ARTICLE.read_text(encoding="utf-8") * 3)
    shutil.copy(REPO / "configs" / "tiny.yaml", folder / "tiny.yaml")
    return folder / "tiny.yaml"
