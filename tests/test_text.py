import pytest

from models.text import (InputError, body_sentences, check_question, decode_article, sentence_at, split_sentences,
                         whole_word_span)


def test_seed_sentences_are_exact_and_skip_page_junk(seed_article):
    sents = body_sentences(seed_article)
    texts = [s.text(seed_article) for s in sents]
    assert all(seed_article[s.start:s.end] == t for s, t in zip(sents, texts))
    assert texts[-1].startswith("The Koreas have also engaged")
    assert not any("Leave a Reply" in t or "Aleppo" in t or "email" in t for t in texts)
    # abbreviations do not end sentences
    assert any(t.startswith("In Washington, U.S. Secretary of State Antony Blinken") for t in texts)


def test_sentence_at_finds_the_containing_sentence(seed_article):
    sents = split_sentences(seed_article)
    pos = seed_article.index("Aurus limo")
    s = sentence_at(sents, pos)
    assert s.text(seed_article).startswith("Putin gave Kim a Russian-made Aurus limo")


@pytest.mark.parametrize("text,start,end,expected", [
    ("a naval officer’s dagger.", 4, 12, "naval officer’s"),
    ("Zürich café naïve", 1, 9, "Zürich café"),
    ("the “breakthrough document,” reflecting", 4, 27, "breakthrough document"),
    ("Привет мир, друзья", 2, 9, "Привет мир"),
    ("北京是中国的首都", 0, 2, "北京"),          # CJK: no widening across the run
])
def test_whole_word_span(text, start, end, expected):
    s, e = whole_word_span(text, start, end)
    assert text[s:e] == expected


@pytest.mark.parametrize("bad,msg", [
    ("", "empty"), ("   \n\t ", "empty"), (b"\xff\xfe\x00abc", "UTF-8"),
    ("abc\x00def" * 10, "binary"), ("x" * 101, "limit"), (12, "text"),
])
def test_bad_articles_get_clear_errors(bad, msg):
    with pytest.raises(InputError, match=msg):
        decode_article(bad, max_chars=100)


def test_bytes_in_utf8_are_accepted():
    assert decode_article("Café au lait.".encode(), 100) == "Café au lait."


@pytest.mark.parametrize("q", ["", "   ", None, "x" * 600])
def test_bad_questions(q):
    with pytest.raises(InputError):
        check_question(q, 500)
