"""ONNX Runtime backend for the reader: the loaded model exported once to an ONNX graph (float32,
or int8 with dynamic quantization), cached on disk under the hash of the weights it came from,
then run by an ONNX Runtime session in place of the torch model.

    python -m models.onnx_backend --profile embedded     # build (or check) the profile's graph ahead of time

Cache: ``<cache>/onnx/<key>/`` (``$ARTICLE_QA_CACHE`` or ``~/.cache/article-qa``, as for the
packaged base model), holding ``model.onnx`` and ``meta.json``. The key hashes every weight of the
loaded model (names, shapes, dtypes, bytes), the variant (float32 / int8), the graph's inputs and
the torch, onnxruntime and exporter versions, so other weights get another graph; ``meta.json``
records the key and the sha256 of ``model.onnx``, and a graph whose file no longer matches it (a
half-written or altered file) is rebuilt, never used. Graphs are written to a temporary folder and
renamed into place. Not committed: they are built where they run (tens of seconds).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

from models.loading import ModelLoadError
from models.packaged_base import cache_root, sha256_file

log = logging.getLogger(__name__)
GRAPH_FORMAT = 1              # bump when the export recipe changes: every cached graph is rebuilt
VARIANTS = ("float32", "int8")
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")


def weights_digest(model) -> str:
    """sha256 over every parameter and buffer of ``model``: name, dtype, shape and bytes."""
    import torch
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def int8_reduce_range() -> bool:
    """Whether int8 weights keep to 7 bits: on CPUs without VNNI (AVX2, AVX-512 without VNNI)
    ONNX Runtime multiplies uint8 activations by int8 weights with an instruction whose 16-bit
    sums saturate, and full-range weights make the reader's logits meaningless (on an AVX2 AMD
    EPYC: none of 30 seed answers kept). 7-bit weights cannot saturate there; VNNI sums in 32
    bits, so full range keeps its extra precision."""
    from models.cpu_features import has_vnni
    return not has_vnni()


def graph_key(model, input_names: list[str], variant: str) -> str:
    import onnxruntime
    import torch
    flavour = f"{variant}-reduce-range" if variant == "int8" and int8_reduce_range() else variant
    parts = [weights_digest(model), flavour, ",".join(input_names), torch.__version__, onnxruntime.__version__,
             str(GRAPH_FORMAT)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def export_float32(model, input_names: list[str], path: Path) -> None:
    """Export with dynamic batch and sequence length (torch.export based exporter)."""
    import warnings

    import torch

    class SpanLogits(torch.nn.Module):
        """The QA model with positional inputs and two outputs, the form the exporter takes."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kw = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            out = self.model(**kw)
            return out.start_logits, out.end_logits

    model = model.float().eval()
    batch, seq = torch.export.Dim("batch", max=1024), torch.export.Dim("seq", min=8, max=4096)
    example = tuple(torch.ones(2, 16, dtype=torch.long) for _ in input_names)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(SpanLogits(), example, str(path), input_names=input_names,
                          output_names=["start_logits", "end_logits"], opset_version=18, dynamo=True,
                          dynamic_shapes=tuple({0: batch, 1: seq} for _ in input_names),
                          external_data=False, verbose=False)


def quantize_to_int8(src: Path, dst: Path, reduce_range: bool) -> None:
    """Dynamic int8 quantization of the graph's matrix multiplies (weights int8 per channel,
    activations quantized on the fly; VNNI instructions where the CPU has them). ``reduce_range``:
    7-bit weights, for CPUs without VNNI (``int8_reduce_range``)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range)


def ensure_graph(model, input_names: list[str], variant: str, root: Path | None = None) -> Path:
    """The cached graph for these weights and variant, built first if missing or stale."""
    if variant not in VARIANTS:
        raise ModelLoadError(f"The onnx backend runs {' or '.join(VARIANTS)}, not {variant!r}.")
    key = graph_key(model, input_names, variant)
    folder = (root or cache_root()) / "onnx" / key[:24]
    meta_path, graph = folder / "meta.json", folder / "model.onnx"
    if meta_path.exists() and graph.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("key") == key and meta.get("sha256") == sha256_file(graph):
            return graph
        log.warning("ONNX graph in %s does not match its record; rebuilding it", folder)
    t0 = time.time()
    log.info("Exporting the reader to an ONNX graph (%s) in %s ...", variant, folder)
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if variant == "int8":
            export_float32(model, input_names, tmp / "float32.onnx")
            quantize_to_int8(tmp / "float32.onnx", tmp / "model.onnx", int8_reduce_range())
            (tmp / "float32.onnx").unlink()
        else:
            export_float32(model, input_names, tmp / "model.onnx")
        (tmp / "meta.json").write_text(json.dumps({
            "key": key, "variant": variant, "inputs": input_names,
            "reduce_range": variant == "int8" and int8_reduce_range(), "sha256": sha256_file(tmp / "model.onnx"),
            "built_s": round(time.time() - t0, 1)}, indent=1), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("ONNX graph built in %.0f s", time.time() - t0)
    return graph


class OnnxQAModel:
    """An ONNX Runtime session answering like the torch QA model: called with the tokenizer's
    tensors, returns ``start_logits`` and ``end_logits`` (torch tensors)."""

    def __init__(self, graph: Path, input_names: list[str], threads: int = 0):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        self.input_names = input_names
        self.graph = graph

    def __call__(self, **enc):
        import numpy as np
        import torch
        feed = {n: np.ascontiguousarray(enc[n].cpu().numpy(), dtype=np.int64) for n in self.input_names}
        start, end = self.session.run(["start_logits", "end_logits"], feed)
        return SimpleNamespace(start_logits=torch.from_numpy(start), end_logits=torch.from_numpy(end))


def graph_inputs(tokenizer) -> list[str]:
    """The model inputs the graph takes, in the exporter's order."""
    return [n for n in INPUT_ORDER if n in tokenizer.model_input_names]


def onnx_model(model, tokenizer, variant: str, threads: int = 0, root: Path | None = None) -> OnnxQAModel:
    names = graph_inputs(tokenizer)
    return OnnxQAModel(ensure_graph(model, names, variant, root), names, threads)


def main(argv: list[str] | None = None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m models.onnx_backend", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="embedded")
    p.add_argument("--dtype", default=None, help="float32 or int8 (default: what the profile runs)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from models.loading import load_pretrained
    from models.profiles import load_profile
    prof = load_profile(args.profile)
    dtype = args.dtype or prof.runtime.dtype
    dtype = "float32" if dtype in ("auto", "bfloat16") else dtype
    model_name = prof.resolve_model(prof.qa.model)
    tokenizer, model = load_pretrained(model_name, "qa", "cpu")
    graph = onnx_model(model, tokenizer, dtype, prof.runtime.threads).graph
    print(f"ONNX graph for {model_name} ({dtype}): {graph}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
