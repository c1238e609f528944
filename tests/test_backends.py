"""Inference backends on the tiny model: ONNX Runtime (float32, int8) and torch bf16/int8 give the
spans of torch float32; the exported graph is cached per weights and rebuilt when stale."""
import json
from pathlib import Path

import pytest

from models.profiles import load_profile
from models.qa import ExtractiveReader
from models.runtime import resolve_runtime

QUESTIONS = ["What did Putin give Kim?", "Who is Kim's powerful sister?", "Where was Putin expected to go next?",
             "How much did the limo cost?"]


def spans(reader, article):
    return [(r["answer"], r["start"], r["end"]) for r in reader.run(article, QUESTIONS, top_k=1)]


@pytest.fixture(scope="module")
def tiny(tiny_profile):
    prof = load_profile(tiny_profile)
    return prof, prof.resolve_model(prof.qa.model)


def reader(tiny, backend, dtype):
    prof, model = tiny
    return ExtractiveReader(prof.qa, model, "cpu", dtype, backend)


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTICLE_QA_CACHE", str(tmp_path))
    return tmp_path / "onnx"


@pytest.mark.parametrize("backend,dtype", [("onnx", "float32"), ("onnx", "int8"), ("torch", "bfloat16"),
                                           ("torch", "int8")])
def test_backends_give_the_spans_of_torch_float32(tiny, onnx_cache, seed_article, backend, dtype):
    want = reader(tiny, "torch", "float32")
    want.warm_up()
    got = reader(tiny, backend, dtype)
    got.warm_up()
    assert got.runtime_choice() == (backend, dtype)
    if backend == "onnx":
        assert type(got.model).__name__ == "OnnxQAModel"
        assert list(onnx_cache.glob("*/model.onnx"))
    assert spans(got, seed_article) == spans(want, seed_article)


def test_int8_weights_keep_to_7_bits_on_cpus_without_vnni(tiny, onnx_cache, seed_article, monkeypatch):
    """Without VNNI, full-range int8 weights saturate ONNX Runtime's 16-bit sums (the MPNet reader
    kept none of 30 seed answers on an AVX2 CPU): such CPUs get a graph of their own, 7-bit."""
    import models.cpu_features as cf
    want = reader(tiny, "torch", "float32")
    want.warm_up()
    graphs = {}
    for vnni in (True, False):
        monkeypatch.setattr(cf, "has_vnni", lambda v=vnni: v)
        got = reader(tiny, "onnx", "int8")
        got.warm_up()
        meta = json.loads((Path(got.model.graph).parent / "meta.json").read_text())
        assert meta["reduce_range"] is (not vnni)
        assert spans(got, seed_article) == spans(want, seed_article)
        graphs[vnni] = Path(got.model.graph)
    assert graphs[True] != graphs[False]


def test_the_graph_is_reused_rebuilt_when_stale_and_never_used_damaged(tiny, onnx_cache, seed_article, tmp_path):
    import shutil

    import torch
    first = reader(tiny, "onnx", "float32")
    first.warm_up()
    graph = Path(first.model.graph)
    built = graph.stat().st_mtime_ns
    again = reader(tiny, "onnx", "float32")
    again.warm_up()
    assert Path(again.model.graph) == graph and graph.stat().st_mtime_ns == built      # reused
    # a damaged graph (its bytes no longer match meta.json) is rebuilt, not used
    graph.write_bytes(graph.read_bytes()[:-100])
    fixed = reader(tiny, "onnx", "float32")
    fixed.warm_up()
    from models.packaged_base import sha256_file
    assert json.loads((graph.parent / "meta.json").read_text())["sha256"] == sha256_file(graph)
    assert spans(fixed, seed_article) == spans(first, seed_article)
    # other weights (the model retrained): another key, a new graph with the new weights' answers
    prof, model = tiny
    changed = tmp_path / "changed-qa"
    shutil.copytree(model, changed)
    from transformers import AutoModelForQuestionAnswering
    m = AutoModelForQuestionAnswering.from_pretrained(changed)
    with torch.no_grad():
        m.qa_outputs.bias += torch.tensor([3.0, -3.0])
        m.qa_outputs.weight.mul_(-1)
    m.save_pretrained(changed, safe_serialization=True)
    new = ExtractiveReader(prof.qa, str(changed), "cpu", "float32", "onnx")
    new.warm_up()
    assert Path(new.model.graph) != graph
    torch_new = ExtractiveReader(prof.qa, str(changed), "cpu", "float32", "torch")
    torch_new.warm_up()
    assert spans(new, seed_article) == spans(torch_new, seed_article)
    assert spans(new, seed_article) != spans(first, seed_article)


def test_auto_picks_the_measured_runtime_that_keeps_the_answers(monkeypatch):
    """auto never picks int8 (it changes answers) nor bf16 where the CPU only emulates it."""
    import models.cpu_features as cf
    monkeypatch.setattr(cf, "has_native_bf16", lambda: True)
    assert resolve_runtime("auto", "auto") == ("torch", "bfloat16")
    assert resolve_runtime("torch", "auto") == ("torch", "bfloat16")
    monkeypatch.setattr(cf, "has_native_bf16", lambda: False)
    assert resolve_runtime("auto", "auto") == ("torch", "float32")       # bf16 would be emulated: slower
    assert resolve_runtime("torch", "auto") == ("torch", "float32")
    assert resolve_runtime("onnx", "auto") == ("onnx", "float32")
    assert resolve_runtime("auto", "auto", device="cuda") == ("torch", "float32")
    assert resolve_runtime("onnx", "int8") == ("onnx", "int8")


AMX_CPU = frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                     "amx_bf16", "amx_int8", "amx_tile"})


def test_forced_avx2_cpu_takes_the_avx2_path(monkeypatch):
    """ARTICLE_QA_CPU=avx2 on a machine with AMX: the flags, auto's runtime and the int8 graph's
    weights are those of an AVX2-only CPU; unset, the machine's own."""
    import models.cpu_features as cf
    from models.onnx_backend import int8_reduce_range
    monkeypatch.setattr(cf, "native_cpu_flags", lambda: AMX_CPU)
    monkeypatch.delenv(cf.CPU_VARIABLE, raising=False)
    assert resolve_runtime("auto", "auto") == ("torch", "bfloat16")
    assert not int8_reduce_range()
    monkeypatch.setenv(cf.CPU_VARIABLE, "avx2")
    assert cf.cpu_flags() == {"sse4_2", "avx", "avx2", "fma"}
    assert resolve_runtime("auto", "auto") == ("torch", "float32")
    assert int8_reduce_range()                 # 7-bit weights: no VNNI on an AVX2 CPU
    assert "acting as an AVX2-only CPU" in cf.describe_cpu()
    monkeypatch.setenv(cf.CPU_VARIABLE, "avx3")
    with pytest.raises(ValueError, match="ARTICLE_QA_CPU must be"):
        cf.cpu_flags()


def test_forced_avx2_cpu_holds_torch_kernels_to_avx2():
    """A process started with ARTICLE_QA_CPU=avx2 runs torch's AVX2 kernels (or lower, on a CPU
    without AVX2), whatever this machine has, once it imports ``models``."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")}
    code = "import models.runtime, torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "ARTICLE_QA_CPU": "avx2"},
                         capture_output=True, text=True, check=True).stdout.split()[-1]
    assert out in ("AVX2", "DEFAULT")


def test_onnx_with_bfloat16_is_refused(tmp_path, tiny_profile):
    text = Path(tiny_profile).read_text()
    bad = Path(tiny_profile).with_name("bad-backend.yaml")
    bad.write_text(text.replace("runtime:\n", "runtime:\n  backend: onnx\n  dtype: bfloat16\n"))
    with pytest.raises(ValueError, match="onnx backend runs float32 or int8"):
        load_profile(bad)
