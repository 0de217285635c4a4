"""Filtered-stream rules: lexing, parsing and matching posts, rejecting what X rejects.

Syntax supported (case-insensitive): keywords (AND by juxtaposition), ``"exact phrases"``,
``OR`` (AND binds tighter), ``( )`` grouping, ``-`` negation of any clause, ``@handle``,
``#hashtag``, ``from:`` and ``to:`` (username or id), ``is:reply``, ``is:retweet``, ``is:quote``
and ``is:verified`` (never true here), ``has:mentions|geo|hashtags|links`` (media kinds never
true), ``lang:``, ``conversation_id:``, ``place_country:``. Keywords match whole words of the
text. Rejected X-style: empty or over 512 characters, unbalanced parentheses or quotes, a
dangling ``OR``, an unknown operator or value, only negated clauses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.channels.sandbox.payload import MENTION, as_dict, as_list

MAX_RULE_LENGTH = 512
_OPERATORS = {
    "from": None,
    "to": None,
    "lang": None,
    "conversation_id": None,
    "place_country": None,
    "is": {"retweet", "quote", "reply", "verified"},
    "has": {"mentions", "geo", "hashtags", "links", "media", "images", "videos"},
}
_WORD = re.compile(r"\w+")
_BARE = re.compile(r'[^\s()"]+')


class RuleSyntaxError(ValueError):
    """A stream rule X would reject; ``str()`` is X's ``detail`` text."""


class TweetView:
    """What rules look at in a post: lower-cased words, mentions, author and reply target."""

    def __init__(
        self,
        tweet: dict[str, Any],
        users: Mapping[str, dict[str, Any]],
        places: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        text = str(tweet.get("text") or "")
        self.words = _WORD.findall(text.lower())
        self.hashtags = {h.lower() for h in re.findall(r"(?<!\w)#(\w+)", text)}
        entities = as_dict(tweet.get("entities"))
        self.mentions = {
            str(m.get("username", "")).lower()
            for m in as_list(entities.get("mentions"))
            if as_dict(m)
        }
        self.mentions |= {m.group(1).lower() for m in MENTION.finditer(text)}
        self.author_id = str(tweet.get("author_id") or "")
        self.author = str(users.get(self.author_id, {}).get("username", "")).lower()
        self.reply_to_id = str(tweet.get("in_reply_to_user_id") or "")
        self.reply_to = str(users.get(self.reply_to_id, {}).get("username", "")).lower()
        refs = as_list(tweet.get("referenced_tweets"))
        self.is_reply = any(as_dict(r).get("type") == "replied_to" for r in refs)
        self.geo = as_dict(tweet.get("geo"))
        self.lang = str(tweet.get("lang") or "").lower()
        self.conversation_id = str(tweet.get("conversation_id") or "")
        place = (places or {}).get(str(self.geo.get("place_id")), {})
        self.country = str(place.get("country_code") or "").lower()
        self.has_links = "http://" in text or "https://" in text


class Rule:
    """A parsed stream rule: ``matches(view)`` says whether a post satisfies it."""

    def __init__(self, kind: str, value: str = "", children: list[Rule] | None = None) -> None:
        self.kind = kind  # and | or | not | phrase | mention | hashtag | op:<name>
        self.value = value
        self.children = children or []

    def positive(self) -> bool:
        """Whether the rule can match on its own (X refuses rules of negations only)."""
        if self.kind == "not":
            return False
        if self.kind == "and":
            return any(c.positive() for c in self.children)
        if self.kind == "or":
            return all(c.positive() for c in self.children)
        return True

    def matches(self, v: TweetView) -> bool:
        k, val = self.kind, self.value
        if k == "and":
            return all(c.matches(v) for c in self.children)
        if k == "or":
            return any(c.matches(v) for c in self.children)
        if k == "not":
            return not self.children[0].matches(v)
        if k == "phrase":
            words = val.split()
            n = len(words)
            return any(v.words[i : i + n] == words for i in range(len(v.words) - n + 1))
        if k == "mention":
            return val in v.mentions
        if k == "hashtag":
            return val in v.hashtags
        if k == "op:from":
            return val in (v.author, v.author_id)
        if k == "op:to":
            return val in (v.reply_to, v.reply_to_id) and bool(val)
        if k == "op:lang":
            return v.lang == val
        if k == "op:conversation_id":
            return v.conversation_id == val
        if k == "op:place_country":
            return v.country == val
        if k == "op:is":
            return val == "reply" and v.is_reply  # retweets, quotes, verified: never here
        if k == "op:has":
            return {
                "mentions": bool(v.mentions),
                "geo": bool(v.geo),
                "hashtags": bool(v.hashtags),
                "links": v.has_links,
            }.get(val, False)
        raise AssertionError(k)


def parse_rule(value: str) -> Rule:
    """Parse an X filtered-stream rule; raise :class:`RuleSyntaxError` as X would reject it."""
    if not value.strip():
        raise RuleSyntaxError("Rule value must not be empty")
    if len(value) > MAX_RULE_LENGTH:
        raise RuleSyntaxError(
            f"Rule is {len(value)} characters long; the maximum is {MAX_RULE_LENGTH}"
        )
    parser = _RuleParser(_lex(value))
    rule = parser.expr()
    if parser.pos != len(parser.tokens):
        kind, _, at = parser.tokens[parser.pos]
        if kind == ")":
            raise RuleSyntaxError(f"Rules must contain balanced parentheses (at position {at + 1})")
        raise RuleSyntaxError(f"Unexpected {kind!r} (at position {at + 1})")
    if not rule.positive():
        raise RuleSyntaxError("Rules must contain at least one positive, non-negated clause")
    return rule


def _lex(value: str) -> list[tuple[str, str, int]]:
    """Tokens (kind, text, position): ``( ) - OR phrase word``."""
    out: list[tuple[str, str, int]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c.isspace():
            i += 1
        elif c in "()":
            out.append((c, c, i))
            i += 1
        elif c == "-":
            if i + 1 >= n or value[i + 1].isspace():
                raise RuleSyntaxError(f"Negation must precede a clause (at position {i + 1})")
            out.append(("-", c, i))
            i += 1
        elif c == '"':
            end = value.find('"', i + 1)
            if end < 0:
                raise RuleSyntaxError(f"Rules must contain balanced quotes (at position {i + 1})")
            if not value[i + 1 : end].strip():
                raise RuleSyntaxError(f"Quoted phrases must not be empty (at position {i + 1})")
            out.append(("phrase", value[i + 1 : end], i))
            i = end + 1
        else:
            m = _BARE.match(value, i)
            assert m is not None
            word = m.group(0)
            out.append(("OR" if word == "OR" else "word", word, i))
            i = m.end()
    return out


class _RuleParser:
    """Recursive descent: ``expr := and (OR and)*``, ``and := unary+``, ``unary := -? atom``."""

    def __init__(self, tokens: list[tuple[str, str, int]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def _peek(self) -> str:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else ""

    def expr(self) -> Rule:
        parts = [self.conjunction()]
        while self._peek() == "OR":
            self.pos += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Rule("or", children=parts)

    def conjunction(self) -> Rule:
        parts: list[Rule] = []
        while self._peek() in ("(", "-", "phrase", "word"):
            parts.append(self.unary())
        if not parts:
            at = self.tokens[self.pos][2] + 1 if self.pos < len(self.tokens) else 0
            what = self._peek() or "end of rule"
            if what == "OR" or (self.pos and self.tokens[self.pos - 1][0] == "OR"):
                raise RuleSyntaxError(f"OR must join two clauses (at position {at})")
            raise RuleSyntaxError(f"Expected a clause, found {what!r} (at position {at})")
        return parts[0] if len(parts) == 1 else Rule("and", children=parts)

    def unary(self) -> Rule:
        if self._peek() == "-":
            self.pos += 1
            if self._peek() not in ("(", "phrase", "word"):
                raise RuleSyntaxError("Negation must precede a clause")
            return Rule("not", children=[self.atom()])
        return self.atom()

    def atom(self) -> Rule:
        kind, text, at = self.tokens[self.pos]
        self.pos += 1
        if kind == "(":
            inner = self.expr()
            if self._peek() != ")":
                raise RuleSyntaxError(
                    f"Rules must contain balanced parentheses (at position {at + 1})"
                )
            self.pos += 1
            return inner
        if kind == "phrase":
            return Rule("phrase", " ".join(_WORD.findall(text.lower())))
        return _term(text, at)


def _term(word: str, at: int) -> Rule:
    low = word.lower()
    if low.startswith("@") and len(low) > 1:
        return Rule("mention", low[1:])
    if low.startswith("#") and len(low) > 1:
        return Rule("hashtag", low[1:])
    name, colon, arg = low.partition(":")
    if colon and re.fullmatch(r"[a-z_]+", name):
        if name not in _OPERATORS:
            raise RuleSyntaxError(f"Reference to invalid operator '{name}' (at position {at + 1})")
        allowed = _OPERATORS[name]
        if not arg or (allowed is not None and arg not in allowed):
            raise RuleSyntaxError(f"Reference to invalid field '{arg}' (at position {at + 1})")
        return Rule("op:" + name, arg.lstrip("@"))
    words = _WORD.findall(low)
    if not words:
        raise RuleSyntaxError(f"Invalid clause {word!r} (at position {at + 1})")
    return Rule("phrase", " ".join(words))


def rule_json(rid: str, value: str, tag: str | None) -> dict[str, str]:
    out = {"id": rid, "value": value}
    if tag:
        out["tag"] = tag
    return out
