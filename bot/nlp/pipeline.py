"""The spaCy pipeline: how it is built, loaded, and turned into :class:`Classification`\\ s.

Pipeline (blank English, nothing downloaded): the English tokenizer with tweet special cases →
``tweet_normalizer`` (NORMs, see :mod:`bot.nlp.normalize`) → ``complaint`` (exclusive textcat:
COMPLAINT / NOT_COMPLAINT) → ``category`` (exclusive textcat over the category ids, trained on
complaints only).

Both text classifiers are the hashed linear model of :mod:`bot.nlp.features`. For ``complaint``
it reads word uni- and bigrams (half of them dropped at random in training) beside general cues
(a complaint lexicon and VADER sentiment); for ``category``, a topic question, word and
character n-grams besides the same cues. ``spacy.TextCatEnsemble.v2`` (a CNN over
NORM/prefix/suffix/shape hash embeddings beside the linear model; ``use_cnn=True``) scored
about the same on the corpus's held-out part but transferred worse to real posts (ROC AUC 0.77
against 0.87 on the real airline set) and classified three times slower, so it is not the
default.

Exclusive rather than multi-label for both: every corpus post has one complaint label and at
most one category, and a softmax gives the probability the router compares across categories.

Hook for later stages: :meth:`Classifier.pipe` yields each Doc with its classification (the
Doc's text is the model's view of the post: the post itself, cut at ``max_chars``), and span
hooks given to the classifier add their spans (e.g. location mentions) to
``Classification.spans``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc

import bot
from bot.errors import DataError
from bot.models import Classification, Span
from bot.nlp import features as _features  # noqa: F401  (registers triagebot.TweetLinear.v1)
from bot.nlp.language import detect_language
from bot.nlp.normalize import (
    MAX_MODEL_CHARS,
    NORMALIZER,
    add_tweet_special_cases,
    doc_text,
    truncate,
)
from bot.nlp.severity import SeverityRules

COMPLAINT = "COMPLAINT"
NOT_COMPLAINT = "NOT_COMPLAINT"
META_KEY = "triagebot"

#: Extra spans for a post, computed from its Doc by a later stage (e.g. location mentions).
SpanHook = Callable[[Doc], Iterable[Span]]


@dataclasses.dataclass(frozen=True, slots=True)
class ModelSettings:
    """Architecture settings of both text classifiers."""

    width: int = 64
    embed_rows: int = 2000
    window_size: int = 1
    depth: int = 2
    ngram_size: int = 2
    char_ngrams: bool = True
    lexicon: bool = True
    feature_dropout: float = 0.0
    generic_scale: float = 1.0
    specific_scale: float = 4.0
    hash_length: int = 2**18
    use_cnn: bool = True


COMPLAINT_MODEL = ModelSettings(
    use_cnn=False, char_ngrams=False, feature_dropout=0.5, specific_scale=2.0
)
CATEGORY_MODEL = ModelSettings(use_cnn=False, char_ngrams=True)


def default_model_dir() -> Path:
    """``models/complaints`` under the project root, or ``$TRIAGE_MODEL_DIR`` when set."""
    override = os.environ.get("TRIAGE_MODEL_DIR")
    if override:
        return Path(override)
    return Path(bot.__file__).resolve().parent.parent / "models" / "complaints"


def _textcat_model(settings: ModelSettings) -> dict[str, Any]:
    linear = {
        "@architectures": "triagebot.TweetLinear.v1",
        "exclusive_classes": True,
        "ngram_size": settings.ngram_size,
        "char_ngrams": settings.char_ngrams,
        "lexicon": settings.lexicon,
        "feature_dropout": settings.feature_dropout,
        "generic_scale": settings.generic_scale,
        "specific_scale": settings.specific_scale,
        "length": settings.hash_length,
        "no_output_layer": False,
    }
    if not settings.use_cnn:
        return linear
    return {
        "@architectures": "spacy.TextCatEnsemble.v2",
        "linear_model": linear,
        "tok2vec": {
            "@architectures": "spacy.Tok2Vec.v2",
            "embed": {
                "@architectures": "spacy.MultiHashEmbed.v2",
                "width": settings.width,
                "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
                "rows": [
                    settings.embed_rows * 2,
                    settings.embed_rows,
                    settings.embed_rows,
                    settings.embed_rows // 2,
                ],
                "include_static_vectors": False,
            },
            "encode": {
                "@architectures": "spacy.MaxoutWindowEncoder.v2",
                "width": settings.width,
                "window_size": settings.window_size,
                "maxout_pieces": 3,
                "depth": settings.depth,
            },
        },
    }


def build_nlp(
    categories: Sequence[str],
    complaint_settings: ModelSettings | None = None,
    category_settings: ModelSettings | None = None,
) -> Language:
    """A fresh, untrained pipeline with the given category ids."""
    if len(categories) < 2:
        raise DataError(f"need at least two categories, got {list(categories)}")
    complaint_settings = complaint_settings or COMPLAINT_MODEL
    category_settings = category_settings or CATEGORY_MODEL
    nlp = spacy.blank("en")
    add_tweet_special_cases(nlp.tokenizer)
    nlp.add_pipe(NORMALIZER)
    complaint = nlp.add_pipe(
        "textcat", name="complaint", config={"model": _textcat_model(complaint_settings)}
    )
    for label in (COMPLAINT, NOT_COMPLAINT):
        complaint.add_label(label)  # type: ignore[attr-defined]
    category = nlp.add_pipe(
        "textcat", name="category", config={"model": _textcat_model(category_settings)}
    )
    for label in categories:
        category.add_label(label)  # type: ignore[attr-defined]
    nlp.meta[META_KEY] = {
        "complaint_model": dataclasses.asdict(complaint_settings),
        "category_model": dataclasses.asdict(category_settings),
    }
    return nlp


class Classifier:
    """A trained pipeline plus the decision threshold, severity rules and span hooks."""

    def __init__(
        self,
        nlp: Language,
        *,
        threshold: float = 0.5,
        max_chars: int = MAX_MODEL_CHARS,
        batch_size: int = 256,
        span_hooks: Sequence[SpanHook] = (),
    ) -> None:
        self.nlp = nlp
        self.threshold = threshold
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.span_hooks = list(span_hooks)
        self.categories: tuple[str, ...] = tuple(nlp.get_pipe("category").labels)  # type: ignore[attr-defined]
        normalizer = nlp.get_pipe(NORMALIZER)
        self.severity = SeverityRules(nlp.vocab, lambda text: normalizer(nlp.make_doc(text)))

    def pipe(self, texts: Iterable[str]) -> Iterator[tuple[Doc, Classification]]:
        """Each post's Doc and classification, in order, batched through ``nlp.pipe``."""

        def cut(items: Iterable[str]) -> Iterator[str]:
            for text in items:
                if not isinstance(text, str):
                    raise TypeError(f"post text must be str, not {type(text).__name__}")
                yield truncate(text, self.max_chars)

        for doc in self.nlp.pipe(cut(texts), batch_size=self.batch_size):
            yield doc, self._classification(doc)

    def classify_many(self, texts: list[str]) -> list[Classification]:
        """Classify posts in batches (``nlp.pipe``)."""
        return [c for _, c in self.pipe(texts)]

    def classify(self, text: str) -> Classification:
        """Classify one post (prefer :meth:`classify_many` for more than one)."""
        return self.classify_many([text])[0]

    def complaint_probability(self, doc: Doc) -> float:
        """P(complaint) of a Doc this classifier's pipeline has processed."""
        return float(doc.cats.get(COMPLAINT, 0.0))

    def _classification(self, doc: Doc) -> Classification:
        probability = self.complaint_probability(doc)
        complaint = probability >= self.threshold
        scores = {c: float(doc.cats.get(c, 0.0)) for c in self.categories}
        # spaCy scores a batch of only empty Docs as all zeros: say "other" for those.
        fallback = "other" if "other" in scores else self.categories[-1]
        category = max(scores, key=lambda c: scores[c]) if any(scores.values()) else fallback
        severity = self.severity.assess(doc, complaint)
        spans = list(severity.spans)
        for hook in self.span_hooks:
            spans.extend(hook(doc))
        language = detect_language(doc_text(doc))
        return Classification(
            complaint=complaint,
            probability=round(probability, 4),
            category=category,
            category_probability=round(scores[category], 4),
            severity=severity.level,
            severity_reasons=severity.reasons,
            spans=tuple(sorted(spans, key=lambda s: (s.start, s.end, s.label))),
            lang=language.lang,
            supported_language=language.supported,
        )

    def to_disk(self, path: str | Path) -> Path:
        """Save the pipeline with the threshold in its meta."""
        path = Path(path)
        meta = dict(self.nlp.meta.get(META_KEY, {}))
        meta.update(threshold=self.threshold, max_chars=self.max_chars)
        self.nlp.meta[META_KEY] = meta
        path.mkdir(parents=True, exist_ok=True)
        self.nlp.to_disk(path)
        return path


def load_classifier(model_dir: str | Path | None = None, **kwargs: Any) -> Classifier:
    """Load a model saved by :func:`bot.nlp.train` (default: :func:`default_model_dir`)."""
    path = Path(model_dir) if model_dir is not None else default_model_dir()
    if not (path / "config.cfg").is_file():
        raise FileNotFoundError(f"{path}: no trained model here (run `triagebot train`)")
    nlp = spacy.load(path)
    meta = nlp.meta.get(META_KEY, {})
    kwargs.setdefault("threshold", float(meta.get("threshold", 0.5)))
    kwargs.setdefault("max_chars", int(meta.get("max_chars", MAX_MODEL_CHARS)))
    return Classifier(nlp, **kwargs)
