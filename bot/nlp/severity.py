"""Rule-based severity: which complaints need a person now.

Four kinds of cue make a complaint ``high``: a safety risk, fraud or a compromised account, a
vulnerable customer, and an outage that hits many people. The rules are spaCy
``PhraseMatcher`` lists (single words and fixed phrases, matched on lower case) and ``Matcher``
patterns (where a word alone is ambiguous: "down" only as "is down", "down for everyone"...).
Both match on the tweet-normalised NORM, so "can't", "cant" and "cannot" are one spelling.

Levels: a complaint with a cue is ``high``; a complaint without one is ``medium``; a post that
is not a complaint is ``low``, unless it carries a cue, which makes it ``medium`` so a person
sees it (a scam warning or a safety report that does not read as a complaint still matters,
but slang such as "this update is fire" must not page anyone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spacy.attrs import NORM
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc
from spacy.vocab import Vocab

from bot.models import Span
from bot.nlp.normalize import doc_text

SAFETY = "safety"
FRAUD = "fraud"
VULNERABLE = "vulnerable"
OUTAGE = "outage"

_PHRASES: dict[str, list[str]] = {
    SAFETY: [
        "injury",
        "injured",
        "injuries",
        "hurt",
        "fire",
        "on fire",
        "smoke",
        "smoking wires",
        "burning",
        "unsafe",
        "dangerous",
        "danger",
        "hazard",
        "assault",
        "assaulted",
        "attacked",
        "violence",
        "violent",
        "threatened",
        "threatening",
        "harassed",
        "harassment",
        "gas leak",
        "smell gas",
        "smell of gas",
        "electric shock",
        "exposed wires",
        "bleeding",
        "ambulance",
        "collapsed",
        "fainted",
        "unconscious",
        "carbon monoxide",
        "food poisoning",
        "allergic reaction",
        "anaphylaxis",
        "choking",
        "weapon",
        "knife",
        "stabbed",
        "broken glass",
        "emergency landing",
        "evacuated",
        "sexual assault",
        "groped",
        "not safe",
        "feel unsafe",
        "felt unsafe",
    ],
    FRAUD: [
        "fraud",
        "fraudulent",
        "fraudster",
        "fraudsters",
        "scam",
        "scammed",
        "scammer",
        "scammers",
        "phishing",
        "hacked",
        "hacker",
        "hackers",
        "identity theft",
        "stolen card",
        "card stolen",
        "card was stolen",
        "cloned",
        "skimmer",
        "skimming",
        "unauthorised",
        "unauthorized",
        "didn't make this",
        "didn't authorise",
        "didn't authorize",
        "someone used my card",
        "account takeover",
        "emptied my account",
        "money stolen",
        "spoofed",
        "impersonating",
        "data breach",
        "breach",
        "leaked",
    ],
    VULNERABLE: [
        "elderly",
        "pensioner",
        "pensioners",
        "disabled",
        "disability",
        "wheelchair",
        "blind",
        "deaf",
        "dementia",
        "alzheimer's",
        "alzheimers",
        "carer",
        "bereavement",
        "bereaved",
        "passed away",
        "died",
        "funeral",
        "widow",
        "widowed",
        "terminally ill",
        "terminal",
        "cancer",
        "chemo",
        "chemotherapy",
        "pregnant",
        "newborn",
        "can't afford food",
        "can't afford to eat",
        "can't afford",
        "no food",
        "food bank",
        "homeless",
        "evicted",
        "eviction",
        "no heating",
        "no heat",
        "no hot water",
        "vulnerable",
        "suicidal",
        "mental health",
        "domestic abuse",
        "dialysis",
        "insulin",
        "oxygen",
        "medical equipment",
        "life support",
        "hospice",
        "disabled son",
        "disabled daughter",
        "autistic",
    ],
    OUTAGE: [
        "outage",
        "outages",
        "offline",
        "power cut",
        "blackout",
        "service down",
        "down for everyone",
        "down for all",
        "down everywhere",
        "down nationwide",
        "not working for anyone",
        "not working for everyone",
        "isn't working for anyone",
        "no signal",
        "no service",
        "no internet",
        "no power",
        "no water",
        "no network",
        "total outage",
        "is anyone else",
        "anyone else having",
        "everyone is having",
    ],
}

# Ambiguous words, matched only in the shapes that mean an outage.
_DOWN_PATTERNS: list[list[dict[str, object]]] = [
    [
        {
            "NORM": {
                "IN": [
                    "is",
                    "are",
                    "'s",
                    "been",
                    "went",
                    "goes",
                    "gone",
                    "still",
                    "all",
                    "site",
                    "app",
                    "website",
                    "service",
                    "server",
                    "servers",
                    "network",
                    "system",
                    "systems",
                    "api",
                    "dashboard",
                    "everything",
                    "again",
                ]
            }
        },
        {"NORM": "down"},
    ],
    [{"NORM": "down"}, {"NORM": {"IN": ["again", "since", "everywhere", "today", "?", "!"]}}],
    [
        {"NORM": {"IN": ["not", "stopped"]}},
        {"NORM": "working"},
        {"NORM": {"IN": ["for", "across"]}},
        {"NORM": {"IN": ["anyone", "everyone", "all", "the", "whole", "us"]}},
    ],
    [{"ORTH": {"IN": ["500", "502", "503", "504"]}}, {"NORM": {"IN": ["error", "errors"]}}],
    [{"NORM": {"IN": ["error", "errors"]}}, {"ORTH": {"IN": ["500", "502", "503", "504"]}}],
]


@dataclass(frozen=True, slots=True)
class Severity:
    """A severity level with the reasons and the text spans that decided it."""

    level: str
    reasons: tuple[str, ...]
    spans: tuple[Span, ...]


class SeverityRules:
    """The matchers, built once per pipeline and applied to each Doc.

    ``make_doc`` must tokenise and normalise the way the pipeline does (see
    :mod:`bot.nlp.normalize`), so phrases are spelled as people write them.
    """

    def __init__(self, vocab: Vocab, make_doc: Callable[[str], Doc]) -> None:
        self._phrases = PhraseMatcher(vocab, attr="NORM")
        self._patterns = Matcher(vocab)
        for label, phrases in _PHRASES.items():
            self._phrases.add(label, [make_doc(p) for p in phrases])
        self._patterns.add(OUTAGE, _DOWN_PATTERNS)
        # The patterns all need one of these words; most posts have none, so skip the Matcher.
        self._pattern_words = {vocab.strings.add(w) for w in ("down", "working", "error", "errors")}

    def cue_spans(self, doc: Doc) -> list[Span]:
        """Every severity cue in ``doc``, as spans with offsets into the Doc's text."""
        found = list(self._phrases(doc))
        if self._pattern_words.intersection(doc.to_array(NORM).tolist()):
            found.extend(self._patterns(doc))
        if not found:
            return []
        text = doc_text(doc)
        spans = {
            (doc[s:e].start_char, doc[s:e].end_char, doc.vocab.strings[m]) for m, s, e in found
        }
        return [
            Span(start, end, f"severity:{label}", text[start:end])
            for start, end, label in sorted(spans)
        ]

    def assess(self, doc: Doc, complaint: bool) -> Severity:
        """The severity of a post, given whether the classifier judged it a complaint."""
        spans = self.cue_spans(doc)
        reasons: list[str] = []
        for span in spans:
            kind = span.label.split(":", 1)[1]
            reason = f"{kind}: {span.text.lower()}"
            if reason not in reasons:
                reasons.append(reason)
        if complaint:
            level = "high" if spans else "medium"
            if not spans:
                reasons.append("complaint")
        else:
            level = "medium" if spans else "low"
            if spans:
                reasons.append("cue in a post not judged a complaint")
        return Severity(level, tuple(reasons), tuple(spans))
