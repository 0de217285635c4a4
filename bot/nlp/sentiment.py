"""Sentiment priors from VADER, as features for the classifier (not as a verdict).

The project's corpus is a few thousand posts; real posts use many negative words it never
has. VADER (the ``vaderSentiment`` package, MIT licence) ships a 7,500-entry lexicon built for
social media (slang, emoticons, "smh", "ugh") and the rules to score a whole post (negation,
"but", capitals, "!!!"). We use both as features: each word's valence class, and the post's
compound score. On its own VADER is a weak complaint detector; as evidence beside the n-grams
it carries the corpus's lessons over to words the corpus never used. The data ships inside
the wheel; nothing is downloaded.
"""

from __future__ import annotations

from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@cache
def analyzer() -> SentimentIntensityAnalyzer:
    """The VADER analyser (reads its lexicon once per process)."""
    return SentimentIntensityAnalyzer()


def valence_class(word: str) -> str | None:
    """``neg2``/``neg1``/``pos1``/``pos2`` for a word in the VADER lexicon, else None."""
    valence = analyzer().lexicon.get(word)
    if valence is None:
        return None
    if valence <= -1.5:
        return "neg2"
    if valence < 0:
        return "neg1"
    if valence >= 1.5:
        return "pos2"
    return "pos1"


def polarity(text: str) -> dict[str, float]:
    """VADER's scores of a whole post: ``neg``, ``neu``, ``pos`` and ``compound`` (-1..1)."""
    scores: dict[str, float] = analyzer().polarity_scores(text)
    return scores
