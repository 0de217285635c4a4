"""A small hand-written lexicon of complaint cues, read by the classifier as extra features.

Each entry maps a normalised token (or a run of normalised tokens) to a cue class. The model
learns one weight per class as well as per word, so a cue word that the training corpus
happens not to use still counts through its class: that is what helps on real posts written
by people the corpus never saw. Words are NORMs (see :mod:`bot.nlp.normalize`): lower case,
repeated letters shrunk to two, contractions expanded by the tokenizer (``can't`` → ``can``
``not``).
"""

from __future__ import annotations

from collections.abc import Iterable

_NEGATIVE = """
worst terrible awful horrible horrendous appalling atrocious abysmal ridiculous unacceptable
disgrace disgraceful disgusting pathetic useless hopeless incompetent incompetence joke shambles
nightmare disaster fail failed failing fails failure mess rubbish garbage trash crap crappy sucks
suck sucked shocking poor bad worse lousy dreadful inexcusable absurd outrageous shameful shame
smh wtf ffs fml ugh annoying annoyed frustrated frustrating frustration disappointed
disappointing disappointment angry furious livid fuming upset unhappy unimpressed infuriating
irritated irritating dissatisfied rude unprofessional unhelpful clueless liars lied lying scam
robbery ripoff rip-off sham laughable insulting ignored ignoring unbelievable seriously
nonsense bs bullshit terrible hate hated hates regret misery miserable stressful stressed
""".split()

_FAILURE = """
delayed delay delays late cancelled canceled cancel cancellation stranded stuck missed lost
missing broken broke outage outages crashed crash crashes crashing error errors glitch bug bugs
declined overcharged charged refund compensation complaint complain complained complaining
problem problems issue issues wrong damaged faulty overbooked bumped diverted unable impossible
frozen freezing locked lockout timeout timed unavailable unreachable offline slow slower
""".split()

_WAITING = """
waiting waited wait still again yet hours hrs hour days weeks hold queue queues line since
forever ages endless eternity repeatedly
""".split()

_NEGATION = """
not no never nobody noone nothing none nowhere neither nor without
""".split()

_POSITIVE = """
thanks thank thx ty love loved loving great awesome amazing excellent best perfect wonderful
fantastic brilliant appreciate appreciated kudos glad happy pleased helpful nice cool yay
congrats congratulations enjoy enjoyed beautiful smooth friendly lovely impressed superb
outstanding stellar shoutout shout-out cheers grateful legend legends star hero favourite
favorite
""".split()

_QUESTION = "how when what where who whats".split()
_WHY = "why y".split()
_EXPECTATION = """
supposed promised told expected expecting should shouldve apparently claimed claim
""".split()
_DEMAND = "fix sort resolve respond answer reply explain compensate refund".split()

_NEG_EMOJI = [
    *"😡😠🤬😤😒🙄😞😩😫😢😭💔👎😑🤦😖😣😓😔😕☹😟🙃",
    ":(",
    ":-(",
    ">:(",
    ":/",
    ":-/",
    "d:",
]
_POS_EMOJI = [*"😍🥰😊😀😃😄😁🙂❤💕💙💜💚👍🙌👏🎉🤩😎✨🌟⭐", ":)", ":-)", ":d", "<3", ";)"]

_PHRASES: dict[str, list[str]] = {
    "phrase_broken": [
        "not working",
        "does not work",
        "do not work",
        "did not work",
        "is not working",
        "stopped working",
        "will not load",
        "can not log",
        "can not login",
        "can not access",
        "can not get",
        "not loading",
        "keeps crashing",
        "keeps failing",
        "went down",
        "is down",
        "are down",
        "down again",
        "still down",
        "been down",
    ],
    "phrase_no_reply": [
        "no one",
        "no response",
        "no reply",
        "no answer",
        "no help",
        "no update",
        "no updates",
        "no info",
        "no information",
        "no way",
        "nobody answers",
        "not answering",
        "not responding",
        "hung up",
        "hang up",
        "on hold",
        "been waiting",
        "still waiting",
        "still no",
        "still not",
        "still have not",
        "yet to",
        "never received",
        "never got",
        "never arrived",
        "did not arrive",
        "not arrived",
        "has not arrived",
    ],
    "phrase_fed_up": [
        "fed up",
        "sick of",
        "tired of",
        "had enough",
        "never again",
        "not happy",
        "not good",
        "not ok",
        "not okay",
        "not acceptable",
        "not impressed",
        "not cool",
        "thanks for nothing",
        "get it together",
        "sort it out",
        "sort this out",
        "do better",
        "step up",
        "take my business",
        "switching to",
        "money back",
        "what is going on",
        "what the",
        "how hard",
        "how is it",
        "how long",
        "how many times",
        "is this a joke",
        "are you kidding",
        "you kidding",
        "no excuse",
        "so much for",
        "customer service",
        "worst customer",
    ],
    "phrase_again": [
        "yet again",
        "once again",
        "yet another",
        "every time",
        "every single",
        "second time",
        "third time",
        "same thing",
        "same problem",
        "same issue",
        "for the last",
        "supposed to",
        "was told",
        "were told",
        "been told",
        "should have",
        "should be",
    ],
    "phrase_positive": [
        "thank you",
        "well done",
        "great job",
        "good job",
        "so helpful",
        "very helpful",
        "keep it up",
        "love you",
        "you rock",
        "made my day",
        "shout out",
        "big thanks",
    ],
}

TOKEN_CUES: dict[str, str] = {}
for _cls, _words in (
    ("neg", _NEGATIVE),
    ("fail", _FAILURE),
    ("wait", _WAITING),
    ("negation", _NEGATION),
    ("pos", _POSITIVE),
    ("question", _QUESTION),
    ("why", _WHY),
    ("expect", _EXPECTATION),
    ("demand", _DEMAND),
    ("neg_emoji", _NEG_EMOJI),
    ("pos_emoji", _POS_EMOJI),
):
    for _w in _words:
        TOKEN_CUES.setdefault(_w, _cls)

PHRASE_CUES: dict[tuple[str, ...], str] = {
    tuple(p.split()): cls for cls, phrases in _PHRASES.items() for p in phrases
}
_MAX_PHRASE = max(len(p) for p in PHRASE_CUES)


_DURATION_UNITS = frozenset(
    "min mins minute minutes hr hrs hour hours day days week weeks month months h".split()
)
_MONEY = frozenset("$ £ € usd gbp eur bucks quid dollars pounds".split())
_MY_STOP = frozenset("own self".split())


def _shapes(words: list[str]) -> list[str]:
    """Cues made of a shape rather than a word: durations, money, "my <thing>", "but"."""
    found = []
    for i, word in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if word in ("xxnum", "an", "a", "few", "several", "two", "three", "24", "48") and (
            nxt in _DURATION_UNITS
        ):
            found.append("duration")
        elif word in _MONEY:
            found.append("money")
        elif word == "my" and nxt.isalpha() and nxt not in _MY_STOP:
            found.append("my_thing")
        elif word == "but" and i > 0:
            found.append("but")
    return found


def _hashtag_cues(hashtags: Iterable[str]) -> list[str]:
    """Cue classes of words at either end of run-together hashtags (#worstflight, #epicfail)."""
    found = []
    for tag in hashtags:
        for n in range(len(tag) - 3, 2, -1):
            head, tail = tag[:n], tag[-n:]
            for piece in (head, tail):
                if piece in TOKEN_CUES and TOKEN_CUES[piece] in ("neg", "fail", "pos", "wait"):
                    found.append(TOKEN_CUES[piece])
                    break
            else:
                continue
            break
    return found


def cues(norms: Iterable[str]) -> list[str]:
    """Cue classes found in a sequence of NORMs, once per occurrence, plus combinations.

    Combinations carry what a linear model cannot see on its own: praise words next to failure
    words is the usual shape of sarcasm ("great, another delay").
    """
    words = list(norms)
    found = [TOKEN_CUES[w] for w in words if w in TOKEN_CUES]
    found.extend(_shapes(words))
    found.extend(
        _hashtag_cues(
            w for i, w in enumerate(words[1:], start=1) if words[i - 1] == "#" and len(w) >= 7
        )
    )
    for n in range(2, _MAX_PHRASE + 1):
        for i in range(len(words) - n + 1):
            cls = PHRASE_CUES.get(tuple(words[i : i + n]))
            if cls:
                found.append(cls)
    kinds = set(found)
    negative = kinds & {
        "neg",
        "fail",
        "neg_emoji",
        "phrase_broken",
        "phrase_no_reply",
        "phrase_fed_up",
    }
    if negative and kinds & {"pos", "pos_emoji", "phrase_positive"}:
        found.append("pos+neg")
    if kinds & {"question", "why"} and "?" in words and negative:
        found.append("question+neg")
    if not negative and kinds & {"pos", "pos_emoji", "phrase_positive"}:
        found.append("only_pos")
    return found
