"""Is a post in English? Good enough to flag the rest for a person, never to drop them.

Supported language: English only (the corpus and the model are English). Everything else is
classified anyway and flagged with ``supported_language=False``.

How: the Unicode script of the letters decides for non-Latin text (Cyrillic, Arabic, CJK...);
for Latin text, the post's words are scored against the stop-word lists that spaCy itself
ships for ~30 Latin-script languages, counting only the words English does not share (and
against each language the English stop words it does not share), plus a few letters only some
languages use (ñ, ß, ł...). A post is non-English only with clear
evidence, so short or ambiguous posts (emoji, "lol", a URL) count as English.

Written here rather than taken from langdetect/langid: those are slower per post than the whole
classifier, langdetect is random unless seeded, and the question asked is only "English or
not", which spaCy's own word lists answer without another dependency.
"""

from __future__ import annotations

import importlib
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache

SUPPORTED_LANGUAGES = frozenset({"en"})
UNDETERMINED = "und"

_LATIN_LANGS = (
    "af az ca cs da de en es et eu fi fr ga hr hu id is it lb lt lv ms nb nl pl pt ro sk sl sq "
    "sv tl tr vi"
).split()
_CYRILLIC_LANGS = ("ru", "uk", "bg", "mk", "sr")
_ARABIC_LANGS = ("ar", "fa", "ur")

# Possessive quantifiers: a long run of letters must not make the e-mail branch backtrack.
_STRIP_RE = re.compile(r"https?://\S+|www\.\S+|[^\s@]++@\S+|[@#]\w+|&\w+;")
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")

# Letters that only some Latin-script languages use: evidence against English on their own.
_MARKED_LETTERS = {
    "ñ": "es",
    "¿": "es",
    "¡": "es",
    "ß": "de",
    "ã": "pt",
    "õ": "pt",
    "ç": "fr",
    "ł": "pl",
    "ą": "pl",
    "ę": "pl",
    "ż": "pl",
    "ő": "hu",
    "ű": "hu",
    "ø": "da",
    "æ": "da",
    "å": "sv",
    "ğ": "tr",
    "ş": "tr",
    "ı": "tr",
    "ř": "cs",
    "ů": "cs",
    "ă": "ro",
    "ț": "ro",
}

# (first code point, last code point, language) for scripts that name a language outright.
_SCRIPTS = (
    (0x0370, 0x03FF, "el"),
    (0x0400, 0x04FF, "cyrillic"),
    (0x0590, 0x05FF, "he"),
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0x0900, 0x097F, "hi"),
    (0x0980, 0x09FF, "bn"),
    (0x0B80, 0x0BFF, "ta"),
    (0x0C00, 0x0C7F, "te"),
    (0x0E00, 0x0E7F, "th"),
    (0x10A0, 0x10FF, "ka"),
    (0x1100, 0x11FF, "ko"),
    (0x3040, 0x30FF, "ja"),
    (0x3130, 0x318F, "ko"),
    (0x4E00, 0x9FFF, "zh"),
    (0xAC00, 0xD7AF, "ko"),
)


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """A language code (ISO 639-1, or ``und``) and whether the classifier supports it."""

    lang: str
    supported: bool


@cache
def _stop_index(langs: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """word → languages whose spaCy stop-word list holds it."""
    index: dict[str, list[str]] = defaultdict(list)
    for lang in langs:
        module = importlib.import_module(f"spacy.lang.{lang}.stop_words")
        for word in module.STOP_WORDS:
            index[word.lower()].append(lang)
    return {w: tuple(ls) for w, ls in index.items()}


def _script(char: str) -> str:
    code = ord(char)
    if code < 0x0250 or 0x1E00 <= code <= 0x1EFF:
        return "latin"
    for first, last, name in _SCRIPTS:
        if first <= code <= last:
            return name
    return "other"


def _exclusive_votes(words: list[str], langs: tuple[str, ...]) -> dict[str, float]:
    """Per language: its stop words in the post that English does not share, less the
    English stop words in the post that it does not share."""
    index = _stop_index(langs)
    english = _stop_index(("en",))
    only: dict[str, float] = defaultdict(float)  # the language's, not English's
    shared: dict[str, float] = defaultdict(float)  # English's and the language's
    english_count = 0
    for word in words:
        in_english = word in english
        english_count += in_english
        for lang in index.get(word, ()):
            (shared if in_english else only)[lang] += 1.0
    return {lang: only[lang] + shared[lang] - english_count for lang in langs if lang != "en"}


def detect_language(text: str) -> LanguageGuess:
    """Guess the language of a post; English unless the evidence says otherwise."""
    cleaned = _STRIP_RE.sub(" ", text)
    scripts: dict[str, int] = defaultdict(int)
    for char in cleaned:
        if char.isalpha():
            scripts[_script(char)] += 1
    total = sum(scripts.values())
    if total == 0:
        return LanguageGuess(UNDETERMINED, True)
    script, count = max(scripts.items(), key=lambda kv: kv[1])
    # Acronyms ("EST", "USA") say nothing about the language.
    words = [w.lower() for w in _WORD_RE.findall(cleaned) if not (w.isupper() and len(w) <= 4)]
    if script != "latin" and count > scripts.get("latin", 0):
        if script == "cyrillic":
            return _best(_exclusive_votes(words, _CYRILLIC_LANGS), default="ru")
        if script == "arabic":
            return _best(_exclusive_votes(words, _ARABIC_LANGS), default="ar")
        return LanguageGuess(script if script != "other" else UNDETERMINED, False)
    scores = _exclusive_votes(words, tuple(_LATIN_LANGS))
    for char in cleaned.lower():
        lang = _MARKED_LETTERS.get(char)
        if lang:
            scores[lang] += 1.0
    lang, best = max(scores.items(), key=lambda kv: kv[1], default=("en", 0.0))
    # Two words ("ok ta") are too few to call, whatever lists they are on.
    if best >= 2.0 and len(words) >= 3:
        return LanguageGuess(lang, False)
    return LanguageGuess("en", True)


def _best(scores: dict[str, float], default: str) -> LanguageGuess:
    lang = max(scores.items(), key=lambda kv: kv[1])[0] if scores else default
    lang = lang if scores.get(lang, 0.0) > 0 else default
    return LanguageGuess(lang, lang in SUPPORTED_LANGUAGES)
