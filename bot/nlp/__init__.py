"""The spaCy classification pipeline: build, train, evaluate, load; and the labelled corpus.

Public API::

    load_records(path, text_column="text", label_column="label", category_column=None)
    load_corpus(directory) -> list[Record]
    train(records, *, seed=0, out_dir=None) -> Path
    load_classifier(model_dir=None) -> Classifier
    Classifier.classify_many(texts) -> list[Classification]
    evaluate(model, records) -> dict
    cross_validate(records, k=10, seed=0) -> dict
"""

from __future__ import annotations

from bot.models import DEFAULT_CATEGORIES
from bot.nlp.data import CORPUS_DIR, Record, load_corpus, load_records
from bot.nlp.evaluate import cross_validate, evaluate
from bot.nlp.pipeline import Classifier, SpanHook, default_model_dir, load_classifier
from bot.nlp.train import TrainConfig, train, train_classifier

__all__ = [
    "CORPUS_DIR",
    "DEFAULT_CATEGORIES",
    "Classifier",
    "Record",
    "SpanHook",
    "TrainConfig",
    "cross_validate",
    "default_model_dir",
    "evaluate",
    "load_classifier",
    "load_corpus",
    "load_records",
    "train",
    "train_classifier",
]
