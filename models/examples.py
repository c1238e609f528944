"""The example article the product was designed around (a news report of Putin's 2024 visit to
Pyongyang, with its web page junk left in) and the questions the page offers for it. One place
for its path: the page, the command line, the evaluation sets and the tests all read it here."""
from __future__ import annotations

from pathlib import Path

EXAMPLE_ARTICLE = Path(__file__).resolve().parent.parent / "eval" / "gold" / "seed_article.txt"
EXAMPLE_QUESTIONS = [
    "What gifts were exchanged?",
    "What did Putin give Kim?",
    "How many years since Putin's last visit to North Korea?",
    "Who is Kim's powerful sister?",
    "What does North Korea get in exchange for munitions?",
    "How much did the limo cost?",
]


def example_article() -> str:
    """The example article's text."""
    return EXAMPLE_ARTICLE.read_text(encoding="utf-8")
