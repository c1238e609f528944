"""article-qa's Python API: ``load_article``, ``predict``, ``predict_many``, ``summarize`` (see serve.api)."""
from serve.api import ArticleQA, get_engine, load_article, predict, predict_many, summarize

__all__ = ["ArticleQA", "get_engine", "load_article", "predict", "predict_many", "summarize"]
