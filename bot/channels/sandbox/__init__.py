"""A local X API v2 sandbox: a loopback HTTP server speaking the endpoints triagebot uses.

tweepy (``Client`` and ``StreamingClient``) runs unchanged against it over real HTTP once its
session is rebased with :func:`bot.channels.transport.rebase_session`. Tests and the demo drive
it through Python methods or the JSON control surface under ``/_sandbox/`` (no auth):
``GET state``, ``GET posts_by_bot``, ``POST publish | fail_next | drop_stream | stall_stream |
send_raw_line | rate_limit | reset``.

Served (shapes as X API v2 documents them): the filtered stream and its rules, ``users/me``,
``users/by/username/:username``, ``users/:id/mentions``, ``users/:id/tweets`` and
``POST /2/tweets``. Every response carries ``x-rate-limit-*`` headers. As on X: fields and
expansions are returned only when asked for; one stream connection at a time; adding rules is
all or nothing; the stream and rules need a Bearer token (``bearer_token`` when one is set),
``users/me`` and posting need user context (OAuth 1.0a, whose signature is not checked, or any
Bearer token when no ``bearer_token`` is set); a reply must answer a post the sandbox knows;
the bot's own posts reach the stream when a rule matches them.

Stream rule syntax supported (case-insensitive): keywords (AND by juxtaposition), ``"exact
phrases"``, ``OR`` (AND binds tighter), ``( )`` grouping, ``-`` negation of any clause,
``@handle``, ``#hashtag``, ``from:`` and ``to:`` (username or id), ``is:reply``, ``is:retweet``,
``is:quote`` and ``is:verified`` (never true here), ``has:mentions|geo|hashtags|links`` (media
kinds never true), ``lang:``, ``conversation_id:``, ``place_country:``. Keywords match whole
words of the text. Rejected X-style: empty or over 512 characters, unbalanced parentheses or
quotes, a dangling ``OR``, an unknown operator or value, only negated clauses.

Written by hand because no maintained library fakes X API v2 (responses-style mocks would
replace tweepy's HTTP layer rather than exercise it).

Layout: :mod:`~bot.channels.sandbox.payload` (post payloads), :mod:`~bot.channels.sandbox.rules`
(stream rules), :mod:`~bot.channels.sandbox.errors` (X error bodies),
:mod:`~bot.channels.sandbox.server` (state and the Python control surface),
:mod:`~bot.channels.sandbox.endpoints` (the X API endpoints), :mod:`~bot.channels.sandbox.http`
(serving, routing, the stream, the HTTP control surface), :mod:`~bot.channels.sandbox.cli`
(``python -m bot.channels.sandbox``).
"""

from __future__ import annotations

from bot.channels.sandbox.cli import main
from bot.channels.sandbox.endpoints import Query, Reply
from bot.channels.sandbox.errors import (
    DUPLICATE_CONTENT,
    TOO_MANY_CONNECTIONS,
    invalid_param,
    problem,
)
from bot.channels.sandbox.http import CONTROL_ACTIONS
from bot.channels.sandbox.payload import (
    DEFAULT_BOT_HANDLE,
    DEFAULT_BOT_USER_ID,
    mention_entities,
    place_object,
    tweet_payload,
    x_time,
)
from bot.channels.sandbox.rules import MAX_RULE_LENGTH, Rule, RuleSyntaxError, TweetView, parse_rule
from bot.channels.sandbox.server import DEFAULT_RATE_LIMIT, TWEPOCH_MS, SandboxServer

__all__ = [
    "CONTROL_ACTIONS",
    "DEFAULT_BOT_HANDLE",
    "DEFAULT_BOT_USER_ID",
    "DEFAULT_RATE_LIMIT",
    "DUPLICATE_CONTENT",
    "MAX_RULE_LENGTH",
    "TOO_MANY_CONNECTIONS",
    "TWEPOCH_MS",
    "Query",
    "Reply",
    "Rule",
    "RuleSyntaxError",
    "SandboxServer",
    "TweetView",
    "invalid_param",
    "main",
    "mention_entities",
    "parse_rule",
    "place_object",
    "problem",
    "tweet_payload",
    "x_time",
]
