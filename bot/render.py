"""The one rendering helper for all text triagebot produces (house style 7).

Templates live in ``templates/`` and run in Jinja's immutable sandbox, with autoescape for
``.html``/``.xml`` templates and ``StrictUndefined`` (a misspelt variable is an error, not an
empty string). Customer text is only ever *data* passed into a template, never a template
itself (invariant 5): there is deliberately no "render this string" function here.

``render`` limits the size of what a template produces; ``render_post_text`` fits a public
post into a platform's length limit, dropping whole words from the end (never cutting one).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from bot.errors import RenderError

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
MAX_RENDER_CHARS = 200_000
ELLIPSIS = "…"

# Customer text quoted into a chat message must not link, ping or format: <, > and & become
# entities (Slack reads <!channel> and <url|text> from them; CommonMark shows entities as the
# characters), link and emphasis characters get a backslash, @ mentions are defused.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]~|#])")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_escape(value: object) -> str:
    """``value`` as literal Markdown text: special characters escaped, mentions defused."""
    text = str(value)
    text = "".join(_MD_ENTITIES.get(c, c) for c in text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("@", "@\u200b")  # zero-width space: no @here / @channel pings


def md_quote(value: object) -> str:
    """``value`` as an escaped Markdown block quote, one ``> `` per line."""
    lines = str(value).splitlines() or [""]
    return "\n".join("> " + md_escape(line) for line in lines)


def oneline(value: object) -> str:
    """Whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(value).split())


def html_lines(value: object) -> Markup:
    """Escaped text with line breaks kept as ``<br>``: for quoting posts in HTML."""
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


class Renderer:
    """A sandboxed Jinja environment on one templates folder, with an output size limit."""

    def __init__(self, templates_dir: Path = TEMPLATES_DIR, max_chars: int = MAX_RENDER_CHARS):
        self.max_chars = max_chars
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(str(templates_dir)),
            autoescape=select_autoescape(
                enabled_extensions=("html", "htm", "xml"), default_for_string=True, default=False
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self.env.filters.update(md_escape=md_escape, md_quote=md_quote, oneline=oneline)
        self.env.filters["html_lines"] = html_lines

    def render(self, template_name: str, /, **context: Any) -> str:
        """The template's output; RenderError if it fails or exceeds ``max_chars``."""
        try:
            text = self.env.get_template(template_name).render(**context)
        except TemplateError as exc:
            raise RenderError(f"template {template_name}: {exc}") from exc
        if len(text) > self.max_chars:
            raise RenderError(
                f"template {template_name} produced {len(text)} characters (limit {self.max_chars})"
            )
        return text

    def render_post_text(
        self,
        template_name: str,
        /,
        limit: int,
        *,
        measure: Callable[[str], int] = len,
        **context: Any,
    ) -> str:
        """The template's output fitted to ``limit`` as counted by ``measure``.

        Too long: whole words are dropped from the end and ``…`` appended, so no word, mention
        or URL is ever cut. ``measure`` is the platform's counter (X weighs characters and
        URLs differently from ``len``). RenderError when not even the first word fits.
        """
        if limit < 1:
            raise ValueError("limit must be positive")
        text = self.render(template_name, **context).strip()
        return fit_words(text, limit, measure=measure)


def fit_words(text: str, limit: int, *, measure: Callable[[str], int] = len) -> str:
    """``text`` if it fits ``limit``, else its longest prefix of whole words plus ``…``."""
    if measure(text) <= limit:
        return text
    # Word boundaries; each candidate keeps the text's own spacing up to that word's end.
    ends = [m.end() for m in re.finditer(r"\S+", text)]
    lo, hi, best = 0, len(ends) - 1, -1
    while lo <= hi:  # the measure only grows with more words, so bisect
        mid = (lo + hi) // 2
        if measure(text[: ends[mid]].rstrip(" ,;:-–—") + ELLIPSIS) <= limit:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best < 0:
        raise RenderError(f"not even the first word fits in {limit} characters")
    return text[: ends[best]].rstrip(" ,;:-–—") + ELLIPSIS


@lru_cache(maxsize=8)
def renderer(templates_dir: Path = TEMPLATES_DIR) -> Renderer:
    """The shared renderer for a templates folder (created on first use, not at import)."""
    return Renderer(templates_dir)


def render(template_name: str, /, **context: Any) -> str:
    """Render ``templates/<template_name>`` with ``context`` (see :class:`Renderer`)."""
    return renderer().render(template_name, **context)


def render_post_text(
    template_name: str,
    /,
    limit: int,
    *,
    measure: Callable[[str], int] = len,
    **context: Any,
) -> str:
    """Render a public post fitted to ``limit`` without cutting a word (see Renderer)."""
    return renderer().render_post_text(template_name, limit, measure=measure, **context)
