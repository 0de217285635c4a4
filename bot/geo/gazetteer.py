"""Gazetteer: find branch names, aliases, streets, areas, landmarks and cities in post text.

Two spaCy ``PhraseMatcher`` layers over a blank English pipeline (no downloaded model):

* **normalised** (finds): over a normalised copy of the text, so spelling variants meet: case
  and accents dropped, apostrophes and possessive 's removed (King's Cross = Kings Cross),
  punctuation inside a name ignored (camden-town), camel-case hashtags split (#CamdenTown),
  street words abbreviated the same way on both sides (Street/St/St. → st, Road/Rd → rd,
  Saint → st), doubled letters collapsed, which covers the commonest misspellings (Picadilly,
  Hamersmith). Other misspellings belong in a branch's ``aliases``. Sentence punctuation is a
  boundary no phrase crosses. Words that occur in no phrase become a placeholder first, so a
  post with none of them is skipped without touching spaCy.
* **exact** (marks): ``attr="LOWER"`` over the post as the blank English tokenizer splits it
  ("CAMDEN", "camden town"). It finds nothing the normalised layer misses, so it runs only on
  posts where that layer found something, to mark matches spelt as in the registry (the
  locator trusts a variant slightly less).

Every match becomes a :class:`Mention`: a :class:`~bot.models.Span` with character offsets into
the original text, and what the phrase can mean (:class:`Meaning`: branches by tier, cities).
Overlapping matches keep the longest ("Camden High Street", not "High Street"). Flags for the
locator: a single common word ("Sale", "Angel", "Borough") is ``weak``; an alias written
"X branch" makes bare "X" ``cue_only`` ("John Lewis" is a shop); a word of another branch's
name is a shortening of it too ("Broadway" may be Fulham Broadway). Whole-text flags say
whether the post talks about a physical branch (queue, counter, ATM) or about the app.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

import spacy
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from bot.geo.registry import Branch, Registry
from bot.models import Span

#: How strongly each kind of phrase names a branch: 1 names it, 2 is on or by it, 3 near it.
TIERS = {"name": 1, "alias": 1, "street": 2, "landmark": 2, "area": 3}

#: Long forms → the short form both sides are written in.
_ABBREVIATIONS = {
    "street": "st",
    "str": "st",
    "saint": "st",
    "road": "rd",
    "avenue": "ave",
    "av": "ave",
    "square": "sq",
    "lane": "ln",
    "place": "pl",
    "gardens": "gdns",
    "terrace": "ter",
    "crescent": "cres",
    "centre": "ctr",
    "center": "ctr",
    "station": "stn",
    "junction": "jct",
    "mount": "mt",
    "&": "and",
}
#: A "." after these is an abbreviation point, not the end of a sentence.
_ABBREVIATED = frozenset({"st", "rd", "ave", "sq", "ln", "pl", "gdns", "ter", "cres", "mt", "jct"})

#: Single words that are ordinary English or banking words as well as place names: "sale",
#: "angel", "borough". Matched only with a cue, see the module docstring.
_COMMON = """
    a an and at bank banks bell branch bridge broadway bury central centre city common court
    cross deal east exchange gate green grove hall harbour heath high hill hope junction king
    kings lane levy market march mint monument north oval palace park parade quarter quay quays
    reading sale square street strand south station temple the tower town union university
    victoria village wall wells west wharf wood angel borough circus mall bow elephant midtown
"""
_COMMON_PHRASES = ("city centre", "town centre", "shopping district", "high street", "main street")

#: Words right after a name that say "this is the branch": "Angel branch", "the Sale one".
_CUE_AFTER = "branch branches brnch office atm atms one"
#: Words right before a name that say "at this place": "queue at Angel".
_CUE_BEFORE = "in at near by on outside inside opposite to from"
#: Words saying a post is about a physical branch, not the app or the phone line.
_BRANCH_CONTEXT = """
    branch branches brnch counter counters cashier cashiers teller tellers queue queues queuing
    queueing que atm atms cashpoint cashpoints machine machines staff staffed manager security
    guard door doors building ramp wheelchair step steps lift toilet toilets inside desk lobby
    seat seats chairs shutters shut appointment deposit coin coins cheque cheques visit visited
"""
#: Words saying a post is about the app or online banking.
_DIGITAL = """
    app apps online website web site login logged log password passcode internet mobile update
    updated crash crashed crashing crashes server servers outage 2fa otp verification
    notification notifications biometric biometrics browser error glitch bug
"""

_WORD_RE = re.compile(r"[^\W_]+(?:['’`][^\W_]+)*|&")
_CAMEL_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_BOUNDARY_RE = re.compile(r"[.!?;:,()\[\]{}|\"“”\n]")
_UNSEEN_RE = re.compile(r"https?://\S+|www\.\S+|@\w+")  # URLs and @handles name no branch
_DOUBLES_RE = re.compile(r"([a-z])\1+")
_BRANCH_SUFFIX_RE = re.compile(r"\s+branch(es)?\s*$", re.IGNORECASE)
BOUNDARY = "|"


@lru_cache(maxsize=65_536)
def norm_word(word: str) -> str:
    """One word's normal form: lower case, no accents, no possessive 's or apostrophes,
    abbreviated (street → st), doubled letters collapsed (piccadilly → picadily)."""
    w = word.lower()
    if not w.isascii():
        w = "".join(c for c in unicodedata.normalize("NFKD", w) if not unicodedata.combining(c))
        w = w.replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.replace("'", "").replace("`", "")
    w = _ABBREVIATIONS.get(w, w)
    return _DOUBLES_RE.sub(r"\1", w)


def _norm_set(words: Iterable[str]) -> frozenset[str]:
    return frozenset(norm_word(w) for w in words)


COMMON_WORDS = _norm_set(_COMMON.split())
COMMON_PHRASES = frozenset(" ".join(norm_word(w) for w in p.split()) for p in _COMMON_PHRASES)
CUE_AFTER = _norm_set(_CUE_AFTER.split())
CUE_BEFORE = _norm_set(_CUE_BEFORE.split())
BRANCH_CONTEXT = _norm_set(_BRANCH_CONTEXT.split())
DIGITAL = _norm_set(_DIGITAL.split())


class Word(NamedTuple):
    """A normalised word and where it is in the original text (a tuple: made per word)."""

    norm: str
    start: int
    end: int


def norm_words(text: str) -> list[Word]:
    """The normalised words of ``text`` with offsets; ``BOUNDARY`` words mark sentence breaks."""
    return [Word(*w) for w in zip(*_norm_columns(text), strict=True)]


def _norm_columns(text: str) -> tuple[list[str], list[int], list[int]]:
    """:func:`norm_words` as three lists (norms, starts, ends): no object per word."""
    seen = (
        _UNSEEN_RE.sub(lambda m: " " * len(m.group()), text) if "@" in text or "/" in text else text
    )
    norms: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    prev_end = 0
    pieces = _PIECES
    for m in _WORD_RE.finditer(seen):
        start, end = m.span()
        if start - prev_end != 1 or seen[prev_end] != " ":  # not a plain space: maybe a boundary
            gap = seen[prev_end:start]
            if (
                norms
                and norms[-1] != BOUNDARY
                and _BOUNDARY_RE.search(gap)
                and not (gap.strip() == "." and norms[-1] in _ABBREVIATED)
            ):
                norms.append(BOUNDARY)
                starts.append(start)
                ends.append(start)
        prev_end = end
        word = m.group()
        parts = pieces.get(word)
        if parts is None:
            parts = _pieces(word)
            if len(pieces) < 200_000:
                pieces[word] = parts
        if len(parts) == 1 and parts[0][2] == end - start:  # the common case: one whole word
            norms.append(parts[0][0])
            starts.append(start)
            ends.append(end)
            continue
        for norm, s, e in parts:
            norms.append(norm)
            starts.append(start + s)
            ends.append(start + e)
    return norms, starts, ends


_PIECES: dict[str, tuple[tuple[str, int, int], ...]] = {}


def _pieces(word: str) -> tuple[tuple[str, int, int], ...]:
    """A word's normalised parts with offsets relative to the word; camel case is split
    (#CamdenTown → camden, town). Cached per word by :func:`norm_words`."""
    if word[1:] != word[1:].lower() and word != word.upper():
        spans = [(p.group(), p.start(), p.end()) for p in _CAMEL_RE.finditer(word)]
    else:
        spans = [(word, 0, len(word))]
    return tuple((n, s, e) for w, s, e in spans if (n := norm_word(w)))


def phrase_key(phrase: str) -> str:
    """The normalised key of a registry phrase: "The Strand" → "strand", "Camden Town branch"
    → "camden town" (a leading "the" and a trailing "branch" are cues, not the name)."""
    words = [w.norm for w in norm_words(phrase) if w.norm != BOUNDARY]
    if words and words[0] == "the":
        words = words[1:]
    if len(words) > 1 and words[-1] in ("branch", "branches"):
        words = words[:-1]
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class Entry:
    """One meaning of a phrase: a branch's name/alias/street/landmark/area, or a city."""

    kind: str  # name | alias | street | landmark | area | city | shortened
    branch_id: str | None  # None for a city
    city: str
    cue_only: bool = False  # from an alias "X branch": bare "X" may be something else


@dataclass(frozen=True, slots=True)
class Meaning:
    """Everything one normalised phrase can mean, worked out once when the gazetteer is built."""

    branches: Mapping[str, int]  # branch id → best tier (1 name/alias, 2 street/landmark, 3 area)
    cities: tuple[str, ...]  # registry cities the phrase names
    label: str  # the strongest kind: name, alias, street, landmark, area or city
    weak: bool  # a common word as well as a place name
    cue_only: bool  # known only as "the X branch": "John Lewis" alone is a shop
    by_tier: Mapping[int, frozenset[str]]
    ids: tuple[str, ...]  # the branches, sorted
    all: frozenset[str]  # the branches, as a set

    @classmethod
    def of(cls, key: str, entries: Sequence[Entry]) -> Meaning:
        branches: dict[str, int] = {}
        cities: dict[str, None] = {}
        kinds: set[str] = set()
        # A shortened name ranks with the phrase's own best meaning: a tie, never a win.
        own = [TIERS[e.kind] for e in entries if e.kind in TIERS]
        short_tier = min(own, default=TIERS["area"])
        for entry in entries:
            kinds.add(entry.kind)
            if entry.branch_id is None:
                cities[entry.city] = None
            else:
                tier = short_tier if entry.kind == "shortened" else TIERS[entry.kind]
                branches[entry.branch_id] = min(tier, branches.get(entry.branch_id, tier))
        label = next(
            (k for k in ("name", "alias", "street", "landmark", "area") if k in kinds), "city"
        )
        by_tier: dict[int, set[str]] = {}
        for bid, tier in branches.items():
            by_tier.setdefault(tier, set()).add(bid)
        return cls(
            MappingProxyType(branches),
            tuple(cities),
            label,
            key in COMMON_WORDS or key in COMMON_PHRASES,
            all(e.cue_only for e in entries),
            MappingProxyType({t: frozenset(ids) for t, ids in by_tier.items()}),
            tuple(sorted(branches)),
            frozenset(branches),
        )


@dataclass(frozen=True, slots=True)
class Mention:
    """A phrase found in the text and the branches (or cities) it may name."""

    span: Span
    key: str
    meaning: Meaning
    exact: bool  # found by the exact (LOWER) layer, not only after normalising
    cued: bool  # "X branch", "the X one", "branch in X"
    after_preposition: bool  # "at X", "in X"
    capitalised: bool

    @property
    def branches(self) -> Mapping[str, int]:
        return self.meaning.branches

    @property
    def cities(self) -> tuple[str, ...]:
        return self.meaning.cities

    @property
    def weak(self) -> bool:
        return self.meaning.weak

    @property
    def best_tier(self) -> int:
        return min(self.meaning.by_tier, default=99)

    def at_tier(self, tier: int) -> frozenset[str]:
        return self.meaning.by_tier.get(tier, frozenset())


@dataclass(frozen=True, slots=True)
class TextMatches:
    """What the gazetteer found in one text."""

    mentions: tuple[Mention, ...]
    branch_context: bool  # the text talks about a physical branch (queue, counter, ATM, …)
    digital: bool  # the text talks about the app or online banking


class Gazetteer:
    """Built once from the registry (and city aliases); :meth:`find` is then cheap."""

    def __init__(
        self,
        registry: Registry | Iterable[Branch],
        city_aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.nlp = spacy.blank("en")
        entries: dict[str, dict[Entry, None]] = {}
        surfaces: dict[str, None] = {}

        def add(phrase: str, entry: Entry) -> None:
            plain = phrase.replace("'", "").replace("’", "")  # "King's Cross" as "Kings Cross"
            keys = {phrase_key(phrase), phrase_key(plain)}
            if entry.kind == "alias" and _BRANCH_SUFFIX_RE.search(phrase):
                entry = replace(entry, cue_only=True)
            raw = [w.lower() for w in _WORD_RE.findall(plain)]
            if raw and raw[0] == "the":
                raw = raw[1:]
            if raw and raw[-1] in ("branch", "branches"):
                raw = raw[:-1]
            if 1 < len(raw) <= 3:  # hashtags: #kingscross
                joined = norm_word("".join(raw))
                if len(joined) >= 8:
                    keys.add(joined)
            for key in keys - {""}:
                entries.setdefault(key, {})[entry] = None
            surfaces[phrase.lower()] = None

        cities: dict[str, None] = {}
        for b in registry:
            cities[b.city] = None
            add(b.name, Entry("name", b.id, b.city))
            for kind, phrases in (
                ("alias", b.aliases),
                ("street", b.streets),
                ("landmark", b.landmarks),
                ("area", b.areas),
            ):
                for phrase in phrases:
                    add(phrase, Entry(kind, b.id, b.city))
        aliases = {k.casefold(): v for k, v in (city_aliases or {}).items()}
        for city in cities:
            add(city, Entry("city", None, city))
            for alias in aliases.get(city.casefold(), ()):
                add(alias, Entry("city", None, city))
        _add_shortenings(entries)
        self.meanings: dict[str, Meaning] = {k: Meaning.of(k, tuple(v)) for k, v in entries.items()}
        #: Every word of every phrase: a post with none of them cannot match, and words outside
        #: it are replaced by a placeholder before matching (fewer distinct strings for spaCy).
        self.vocabulary = frozenset(w for key in self.meanings for w in key.split())
        self.cities = tuple(cities)

        self._exact = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        self._exact.add("GEO", [self.nlp.make_doc(text) for text in surfaces])
        self._norm = PhraseMatcher(self.nlp.vocab, attr="ORTH")
        self._norm.add("GEO", [Doc(self.nlp.vocab, words=key.split()) for key in self.meanings])

    def __len__(self) -> int:
        return len(self.meanings)

    def find(self, text: str) -> TextMatches:
        """Every place phrase in ``text``, longest first where they overlap, in text order."""
        norms, starts, ends = _norm_columns(text)
        if not norms:
            return TextMatches((), False, False)
        context = not BRANCH_CONTEXT.isdisjoint(norms)
        digital = not DIGITAL.isdisjoint(norms)
        vocabulary = self.vocabulary
        if vocabulary.isdisjoint(norms):
            return TextMatches((), context, digital)
        known = [n if n in vocabulary else "_" for n in norms]
        found: dict[tuple[int, int], bool] = {}  # (start char, end char) → exact
        for _, s, e in self._norm(Doc(self.nlp.vocab, words=known)):
            found[(starts[s], ends[e - 1])] = False
        if not found:
            # The normalised layer finds everything the exact one does (same phrase, same
            # words), so the exact layer only runs to mark which matches were spelt exactly.
            return TextMatches((), context, digital)
        doc = self.nlp.make_doc(text)
        for _, s, e in self._exact(doc):
            found[(doc[s].idx, doc[e - 1].idx + len(doc[e - 1]))] = True
        chosen: list[tuple[int, int, bool]] = []
        for (start, end), exact in sorted(
            found.items(), key=lambda kv: (kv[0][0] - kv[0][1], kv[0][0])
        ):
            if all(end <= s or start >= e for s, e, _ in chosen):
                chosen.append((start, end, exact))
        chosen.sort()
        mentions = []
        for start, end, exact in chosen:
            mention = self._mention(text, norms, starts, ends, start, end, exact)
            if mention is not None:
                mentions.append(mention)
        return TextMatches(tuple(mentions), context, digital)

    def _mention(
        self,
        text: str,
        norms: list[str],
        starts: list[int],
        ends: list[int],
        start: int,
        end: int,
        exact: bool,
    ) -> Mention | None:
        first = bisect_left(starts, start)
        last = bisect_right(ends, end) - 1
        inside = [n for n in norms[first : last + 1] if n != BOUNDARY]
        if inside and inside[0] == "the":
            inside = inside[1:]
        if len(inside) > 1 and inside[-1] in ("branch", "branches"):
            inside = inside[:-1]
        key = " ".join(inside)
        meaning = self.meanings.get(key)
        if meaning is None:
            return None
        after = norms[last + 1] if last + 1 < len(norms) else ""
        before = norms[first - 1] if first > 0 else ""
        before2 = norms[first - 2] if first > 1 else ""
        inside_last = norms[last] if last >= first else ""
        cued = (
            after in CUE_AFTER
            or inside_last in CUE_AFTER
            or (before in ("in", "at", "on") and before2 in CUE_AFTER)
        )
        surface = text[start:end]
        return Mention(
            span=Span(start, end, f"geo:{meaning.label}", surface),
            key=key,
            meaning=meaning,
            exact=exact,
            cued=cued,
            after_preposition=before in CUE_BEFORE,
            capitalised=surface[:1].isupper(),
        )


def _add_shortenings(entries: dict[str, dict[Entry, None]]) -> None:
    """Customers shorten branch names: "the Broadway branch" may be Fulham Broadway. A single
    word that names no branch itself (only a street, landmark or area) but is a word of other
    branches' names or aliases is made to mean those branches too, at the same tier, so that it
    is ambiguous rather than a confident pick of the street's branch."""
    named: dict[str, set[tuple[str, str]]] = {}
    for key, found in entries.items():
        words = key.split()
        if len(words) < 2:
            continue
        for e in found:
            if e.branch_id is not None and e.kind in ("name", "alias") and not e.cue_only:
                for w in words:
                    named.setdefault(w, set()).add((e.branch_id, e.city))
    for key, found in entries.items():
        if " " in key or key not in named:
            continue
        if any(e.kind in ("name", "alias", "city") for e in found):
            continue
        have = {e.branch_id for e in found}
        for bid, city in sorted(named[key]):
            if bid not in have:
                found[Entry("shortened", bid, city)] = None
