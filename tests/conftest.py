from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import free_port  # noqa: E402
from tests.tiny_models import SEED_ARTICLE, build_tiny_mpnet, build_tiny_profile  # noqa: E402


@pytest.fixture(scope="session")
def tiny_profile(tmp_path_factory) -> str:
    """Path of a tiny profile whose random-weight models were just built."""
    return str(build_tiny_profile(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="session")
def tiny_mpnet(tmp_path_factory) -> Path:
    """Folder of a random two-layer MPNet QA model (``build_tiny_mpnet``)."""
    return build_tiny_mpnet(tmp_path_factory.mktemp("tiny_mpnet"))


@pytest.fixture(scope="session")
def seed_article() -> str:
    return SEED_ARTICLE.read_text(encoding="utf-8")


def long_article(words: int = 20000) -> str:
    """A deterministic article of about ``words`` words, with paragraphs, sentences, curly quotes
    and some non-ASCII words."""
    import random
    rng = random.Random(7)
    vocab = ("the president minister signed agreement treaty “alliance” city Pyongyang Moscow café "
             "naïve Zürich economic technology weapons summit visit talks crowd flags limousine gift "
             "dagger tea set artworks report sanctions border bridge cooperation science").split()
    paras, n = [], 0
    while n < words:
        sents = []
        for _ in range(rng.randint(3, 6)):
            k = rng.randint(8, 20)
            w = [rng.choice(vocab) for _ in range(k)]
            sents.append(w[0].capitalize() + " " + " ".join(w[1:]) + ".")
            n += k
        paras.append(" ".join(sents))
    return "\n\n".join(paras)


@pytest.fixture(scope="session")
def served(tiny_profile):
    from serve.api import get_engine
    from serve.app import LAUNCH_OPTIONS, build_app
    engine = get_engine(tiny_profile)
    engine.warm_up()
    demo = build_app(engine)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_OPTIONS)
    yield f"http://127.0.0.1:{port}/", engine
    demo.close()


# modules that load the shipped readers, Ray, Chromium, ONNX Runtime exports or train: `make test`
# runs them, `make check` (the working loop: tiny models only) leaves them out
SLOW_MODULES = {"test_embedded_quality", "test_fast_quality", "test_fast_path", "test_summarize_embedded",
                "test_ray_batch", "test_train_recipe", "test_backends", "test_web",
                "test_sentence_prior", "test_packaged_base", "test_summary_scorer", "test_repeat_prior",
                "test_offline", "test_readme", "test_tune"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
