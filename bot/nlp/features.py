"""Sparse features for the linear half of the text classifier, and its spaCy architecture.

spaCy's own ``TextCatBOW`` hashes n-grams of ``ORTH``, the raw token text, so it sees ``@united``
and ``@delta`` as unrelated words and ``soooo`` apart from ``soo``. This architecture hashes the
tweet-normalised ``NORM`` instead and adds, all into one hashed sparse linear layer:

* word n-grams of NORM (1..``ngram_size``);
* character 3-5-grams of each word (``<del``, ``ayed>``), which carry inflections and
  misspellings the corpus never had ("delaaayed", "cancelation");
* cue classes from :mod:`bot.nlp.lexicon`, and a few shape features (question, shouting,
  several exclamation marks, length bucket);
* sentiment priors from :mod:`bot.nlp.sentiment`: each word's VADER valence class, and the
  post's VADER scores as real-valued features.

Registered as ``triagebot.TweetLinear.v1`` so a saved pipeline's config names it; importing this
module (``bot.nlp`` does) must happen before loading a model.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from spacy.attrs import IS_ALPHA, IS_PUNCT, IS_UPPER, LENGTH, NORM
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Logistic, Model, SparseLinear_v2, chain, softmax_activation
from thinc.types import ArrayXd, Floats2d

from bot.nlp.lexicon import cues
from bot.nlp.normalize import doc_text
from bot.nlp.sentiment import polarity, valence_class

_CHAR_MIN, _CHAR_MAX = 3, 5
_GENERIC_KEY = "triagebot.generic_features"


_CHAR_CACHE: dict[int, np.ndarray] = {}
_CHAR_CACHE_MAX = 200_000
_NO_KEYS = np.zeros((0,), dtype="uint64")


def _char_keys(norm_id: int, strings: Any) -> np.ndarray:
    """Hash keys of one word's character n-grams, cached by NORM id (words repeat a lot)."""
    keys = _CHAR_CACHE.get(norm_id)
    if keys is None:
        norm = strings[norm_id]
        if len(norm) < 2 or not any(c.isalpha() for c in norm):
            keys = _NO_KEYS
        else:
            padded = f"<{norm}>"
            keys = np.asarray(
                [
                    get_string_id(f"c:{padded[i : i + n]}")
                    for n in range(_CHAR_MIN, _CHAR_MAX + 1)
                    for i in range(len(padded) - n + 1)
                ],
                dtype="uint64",
            )
        if len(_CHAR_CACHE) >= _CHAR_CACHE_MAX:
            _CHAR_CACHE.clear()
        _CHAR_CACHE[norm_id] = keys
    return keys


@lru_cache(maxsize=64)
def _key(feature: str) -> int:
    return get_string_id(feature)


def _counted(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys with dampened counts (square roots), so repeats add less and less."""
    keys, counts = np.unique(raw, return_counts=True)
    return keys, np.sqrt(counts.astype("float32"))


def specific_features(
    doc: Doc, ngram_size: int, char_ngrams: bool, scale: float, ops: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Word n-grams (and character n-grams) of NORM: keys and values, L2 norm ``scale``."""
    norm_ids = np.ascontiguousarray(doc.to_array(NORM).astype("uint64"))
    parts = [norm_ids]
    for n in range(2, ngram_size + 1):
        if len(norm_ids) >= n:
            parts.append(ops.ngrams(n, norm_ids))
    if char_ngrams:
        strings = doc.vocab.strings
        parts.extend(_char_keys(int(i), strings) for i in norm_ids)
    keys, vals = _counted(np.concatenate(parts))
    norm = float(np.sqrt((vals**2).sum())) or 1.0
    return keys, vals * (scale / norm)


def generic_features(doc: Doc) -> tuple[np.ndarray, np.ndarray]:
    """Lexicon cues, VADER valence classes and scores, and shape: keys and values.

    These carry over to words and phrasings the corpus never had; they are never dropped in
    training and are not normalised by the post's length.
    """
    table = doc.to_array([NORM, IS_UPPER, IS_ALPHA, IS_PUNCT, LENGTH]).astype("uint64")
    strings = doc.vocab.strings
    norms = [strings[int(i)] for i in table[:, 0]]
    names = [f"cue:{c}" for c in cues(norms)]
    names.extend(f"vader:{v}" for v in map(valence_class, norms) if v)
    if "?" in norms:
        names.append("shape:question")
    if norms.count("!") >= 2:
        names.append("shape:exclaims")
    if len(table) and np.any(table[:, 1] & table[:, 2] & (table[:, 4] >= 3)):
        names.append("shape:shouting")
    words = int(len(table) - table[:, 3].sum())
    names.append(f"shape:len{min(words // 6, 5)}")
    keys, vals = _counted(np.asarray([_key(n) for n in names], dtype="uint64"))
    scores = polarity(doc_text(doc))
    compound = scores["compound"]
    dense = {
        "vader:compound_neg": max(0.0, -compound),
        "vader:compound_pos": max(0.0, compound),
        "vader:neg": scores["neg"],
        "vader:pos": scores["pos"],
        f"vader:bin{int((compound + 1) * 3.999)}": 1.0,
    }
    keys = np.concatenate([keys, np.asarray([_key(n) for n in dense], dtype="uint64")])
    vals = np.concatenate([vals, np.asarray(list(dense.values()), dtype="float32")])
    return keys, vals


def tweet_features(
    ngram_size: int,
    char_ngrams: bool,
    lexicon: bool,
    dropout: float = 0.0,
    generic_scale: float = 1.0,
    specific_scale: float = 4.0,
) -> Model[list[Doc], tuple[ArrayXd, ArrayXd, ArrayXd]]:
    """Thinc layer: Docs → (keys, values, lengths), the input SparseLinear takes.

    In training, each n-gram feature is dropped with probability ``dropout``, so the model
    cannot lean on a few corpus-specific n-grams and learns weights for the general cues too.
    ``generic_scale`` and ``specific_scale`` set the two groups' value sizes (a larger value
    needs a smaller weight, so weight decay holds it back less).
    """
    return Model(
        "tweet_features",
        _features_forward,
        attrs={
            "ngram_size": ngram_size,
            "char_ngrams": char_ngrams,
            "lexicon": lexicon,
            "dropout": dropout,
            "generic_scale": generic_scale,
            "specific_scale": specific_scale,
        },
    )


def _features_forward(
    model: Model, docs: list[Doc], is_train: bool
) -> tuple[tuple[Any, Any, Any], Callable[[Any], list[Any]]]:
    attrs = model.attrs
    cache_key = (
        "triagebot.features:{ngram_size}:{char_ngrams}:{lexicon}:{generic_scale}:{specific_scale}"
    ).format(**attrs)
    batch_keys = []
    batch_vals = []
    for doc in docs:
        # Both text classifiers, and every training epoch, read the same features: keep them.
        cached = doc.user_data.get(cache_key)
        if cached is None:
            keys, vals = specific_features(
                doc, attrs["ngram_size"], attrs["char_ngrams"], attrs["specific_scale"], model.ops
            )
            n_specific = len(keys)
            if attrs["lexicon"]:
                g_keys, g_vals = doc.user_data.get(_GENERIC_KEY) or generic_features(doc)
                doc.user_data[_GENERIC_KEY] = (g_keys, g_vals)
                keys = np.concatenate([keys, g_keys])
                vals = np.concatenate([vals, g_vals * attrs["generic_scale"]])
            cached = doc.user_data[cache_key] = (keys, vals.astype("float32"), n_specific)
        keys, vals, n_specific = cached
        if is_train and attrs["dropout"] > 0:
            mask = np.ones(len(keys), dtype=bool)
            mask[:n_specific] = model.ops.xp.random.random_sample(n_specific) >= attrs["dropout"]
            keys, vals = keys[mask], vals[mask]
        batch_keys.append(keys)
        batch_vals.append(vals)
    lengths = np.asarray([len(k) for k in batch_keys], dtype="int32")
    keys_all = np.concatenate(batch_keys) if batch_keys else _NO_KEYS
    vals_all = np.concatenate(batch_vals) if batch_vals else np.zeros((0,), dtype="float32")

    def backprop(d_output: Any) -> list[Any]:
        return []

    return (keys_all, vals_all, lengths), backprop


@registry.architectures("triagebot.TweetLinear.v1")
def build_tweet_linear(
    exclusive_classes: bool,
    ngram_size: int = 2,
    char_ngrams: bool = True,
    lexicon: bool = True,
    feature_dropout: float = 0.0,
    generic_scale: float = 1.0,
    specific_scale: float = 4.0,
    length: int = 2**18,
    no_output_layer: bool = False,
    nO: int | None = None,
) -> Model[list[Doc], Floats2d]:
    """A hashed linear text classifier over :func:`tweet_features`."""
    sparse = SparseLinear_v2(nO=nO, length=length)
    model: Model[list[Doc], Floats2d] = chain(
        tweet_features(
            ngram_size, char_ngrams, lexicon, feature_dropout, generic_scale, specific_scale
        ),
        sparse,
    )
    if not no_output_layer:
        output = softmax_activation() if exclusive_classes else Logistic()
        model = chain(model, output)
    model.set_ref("output_layer", sparse)
    model.attrs["multi_label"] = not exclusive_classes
    return model
