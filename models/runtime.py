"""The reader's runtime: which backend and number type run its weights on this machine, and the
weights loaded that way (torch float32 / bfloat16 / dynamic int8, or an ONNX Runtime graph)."""
from __future__ import annotations


def resolve_dtype(dtype: str) -> str:
    """"auto" -> "bfloat16" where the CPU has native bf16 (AVX-512 BF16 or AMX), else "float32".

    bfloat16 weights run the reader about twice as fast on such CPUs; elsewhere bf16 is emulated
    and slower than float32, so auto never picks it there."""
    if dtype == "auto":
        from models.cpu_features import has_native_bf16
        return "bfloat16" if has_native_bf16() else "float32"
    return dtype


def resolve_runtime(backend: str, dtype: str, device: str = "cpu") -> tuple[str, str]:
    """The (backend, dtype) to run. ``backend``: "torch", "onnx" or "auto"; ``dtype``: "float32",
    "bfloat16", "int8" or "auto". On a GPU: torch, float32 unless bfloat16 is asked for.

    "auto" is the fastest runtime measured to keep the answers of torch float32 (README
    "Performance", docs/decisions.md): torch bfloat16 where the CPU computes bf16 natively, torch
    float32 elsewhere. ONNX Runtime float32 keeps every answer but was no faster overall, and int8
    (either backend) changes answers, so "auto" picks neither; both remain settings."""
    if device != "cpu":
        return "torch", ("bfloat16" if dtype == "bfloat16" else "float32")
    if backend == "onnx":
        return "onnx", ("float32" if dtype == "auto" else dtype)
    if backend == "auto" and dtype in ("float32", "int8"):
        return "torch", dtype
    return "torch", resolve_dtype(dtype)


def quantize_int8(model):
    """Dynamic int8 quantization of the linear layers (weights int8, activations quantized on the
    fly): faster matrix multiplies on AVX2 CPUs, a quarter of the weight memory."""
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch points users at torchao; this API still works
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def load_reader_weights(model_name: str, device: str, backend: str, dtype: str, threads: int = 0):
    """(tokenizer, model) of a QA model folder or hub id, run as ``backend``/``dtype`` (already
    resolved, ``resolve_runtime``), with fused attention on torch (``models.attention``); raises
    ``models.loading.ModelLoadError``."""
    from models.loading import load_pretrained

    tokenizer, model = load_pretrained(model_name, "qa", device)
    if backend == "onnx":
        from models.onnx_backend import onnx_model
        return tokenizer, onnx_model(model, tokenizer, dtype, threads)
    from models.attention import fuse_attention
    fuse_attention(model)
    if dtype == "int8":
        return tokenizer, quantize_int8(model)
    if dtype == "bfloat16":
        import torch
        return tokenizer, model.to(torch.bfloat16)
    return tokenizer, model
