"""Tweet normalisation that keeps character offsets into the original text.

The model never sees rewritten text. The Doc keeps the post's own characters, so every span a
stage reports (``token.idx``) points into ``Post.text``; what changes is each token's ``NORM``,
which is the attribute the classifier's features read:

* URLs become ``xxurl``, @handles ``xxuser``, plain numbers ``xxnum``;
* runs of three or more of the same character shrink to two (``soooo`` → ``soo``);
* curly quotes become straight, HTML entities (``&amp;`` as the X API sends them) are decoded,
  emoji lose skin-tone and variation selectors;
* a camel-case hashtag is split into words (``#NeverAgain`` → ``#`` ``Never`` ``Again``) and a
  number glued to a unit into two tokens (``3hrs`` → ``3`` ``hrs``); both are splits of a token
  into pieces whose text joins back exactly, so offsets stay true.

Long posts are cut by :func:`truncate` before the pipeline sees them; the cut is a prefix, so
offsets stay true for it as well.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

import numpy as np
from spacy.attrs import SPACY
from spacy.language import Language
from spacy.symbols import NORM, ORTH
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc

#: Longest text the model reads. Posts are at most a few hundred characters; anything longer
#: (a pasted email, a thread dump) is judged on its first part, cut at a word boundary.
MAX_MODEL_CHARS = 2000

NORMALIZER = "tweet_normalizer"
TEXT_KEY = "triagebot.text"

_URL_RE = re.compile(
    r"^(?:https?://|www\.)\S+$|^\w[\w.-]*\.(?:com|co|net|org|io|ly|gl|uk)/\S*$", re.IGNORECASE
)
_MENTION_RE = re.compile(r"^@\w+$")
_NUMBER_RE = re.compile(r"^[+-]?\d+(?:[.,:/]\d+)*$")
_REPEAT_RE = re.compile(r"(.)\1{2,}")
_CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_NUMBER_UNIT_RE = re.compile(
    r"^(\d+(?:\.\d+)?)(hrs?|hours?|mins?|minutes?|secs?|days?|wks?|weeks?|months?|yrs?|years?"
    r"|h|m|am|pm|x|k|gb|mb|ms|mins)$",
    re.IGNORECASE,
)
_ENTITIES = ("&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&lt;3")
_EMOJI_MODIFIERS = dict.fromkeys(
    [0xFE0F, 0xFE0E, *range(0x1F3FB, 0x1F400)]  # variation selectors, skin tones
)
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def truncate(text: str, limit: int = MAX_MODEL_CHARS) -> str:
    """Return a prefix of ``text`` of at most ``limit`` characters, cut at whitespace if near."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit - 200, limit + 1)
    return text[: cut if cut > 0 else limit]


@lru_cache(maxsize=65536)
def norm_text(text: str, base_norm: str | None = None) -> str:
    """The NORM for one token's text; ``base_norm`` is the tokenizer's own (e.g. n't → not)."""
    if _URL_RE.match(text):
        return "xxurl"
    if _MENTION_RE.match(text):
        return "xxuser"
    if text in _ENTITIES:
        return html.unescape(text)
    if _NUMBER_RE.match(text):
        return "xxnum"
    lowered = text.lower()
    norm = base_norm if base_norm and base_norm != lowered else lowered
    norm = norm.translate(_QUOTES).translate(_EMOJI_MODIFIERS)
    norm = _REPEAT_RE.sub(r"\1\1", norm)
    return norm or text


def _split_pieces(texts: list[str], spaced: list[bool], i: int) -> list[str] | None:
    """Pieces to split token ``i`` into, or None to leave it whole."""
    text = texts[i]
    if i > 0 and texts[i - 1] == "#" and not spaced[i - 1] and len(text) > 3:
        pieces = _CAMEL_RE.findall(text)
        if len(pieces) > 1 and "".join(pieces) == text:
            return pieces
        return None
    if text[:1].isdigit() and (match := _NUMBER_UNIT_RE.match(text)):
        return [match.group(1), match.group(2)]
    return None


def doc_text(doc: Doc) -> str:
    """The Doc's text, as the normaliser kept it (cheaper than ``doc.text``)."""
    text = doc.user_data.get(TEXT_KEY)
    return text if isinstance(text, str) else doc.text


def add_tweet_special_cases(tokenizer: Tokenizer) -> None:
    """Keep the HTML entities the X API leaves in post text as single tokens."""
    for entity in _ENTITIES:
        tokenizer.add_special_case(entity, [{ORTH: entity, NORM: html.unescape(entity)}])


class TweetNormalizer:
    """Pipeline component: splits hashtags and number+unit tokens, then sets every NORM."""

    def __init__(self, nlp: Language, name: str = NORMALIZER) -> None:
        self.name = name
        # (ORTH, tokenizer NORM) → our NORM, as string ids: most tokens repeat, and working
        # on arrays spares a Token object per token.
        self._norms: dict[tuple[int, int], int] = {}

    def __call__(self, doc: Doc) -> Doc:
        strings = doc.vocab.strings
        table = doc.to_array([ORTH, NORM, SPACY])
        texts = [strings[int(o)] for o in table[:, 0]]
        spaced = [bool(s) for s in table[:, 2]]
        splits = [
            (i, pieces) for i in range(len(texts)) if (pieces := _split_pieces(texts, spaced, i))
        ]
        if splits:
            with doc.retokenize() as retokenizer:
                for i, pieces in splits:
                    token = doc[i]
                    heads = [(token, 0)] * len(pieces)
                    retokenizer.split(token, pieces, heads=heads)  # type: ignore[arg-type]
            table = doc.to_array([ORTH, NORM, SPACY])
        if len(self._norms) > 200_000:
            self._norms.clear()
        norms = np.empty((len(table), 1), dtype="uint64")
        for row, (orth, base) in enumerate(table[:, :2].tolist()):
            norm = self._norms.get((orth, base))
            if norm is None:
                norm = strings.add(norm_text(strings[orth], strings[base]))
                self._norms[(orth, base)] = norm
            norms[row, 0] = norm
        doc.from_array([NORM], norms)  # type: ignore[arg-type]
        # The text again, from what is at hand: doc.text would build a Token per token.
        doc.user_data[TEXT_KEY] = "".join(
            f"{t} " if sp else t for t, sp in zip(texts, spaced, strict=True)
        )
        return doc


@Language.factory(NORMALIZER)
def make_tweet_normalizer(nlp: Language, name: str) -> TweetNormalizer:
    """spaCy factory for :class:`TweetNormalizer` (no settings, nothing to serialise)."""
    return TweetNormalizer(nlp, name)
