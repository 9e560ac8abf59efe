"""Model-written text as safe HTML: prose escaped, fenced code highlighted on the server.

Nothing of the text is ever interpreted as markup: prose is escaped and kept as written (no
markdown rendering, so a model cannot make a link), and code goes through Pygments, whose HTML
formatter escapes every token. The colours come from a stylesheet (`stylesheet()`), never from
inline styles, so the viewer's Content-Security-Policy can forbid those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import PythonLexer, TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

# Longest text rendered (characters); the rest is cut with a note (answers are untrusted).
MAX_CHARS = 200_000
_CSS_CLASS = "hl"
# A fence line: ``` or ~~~ (three or more), an optional language tag; possessive, so a hostile
# line of backticks fails in linear time.
_FENCE = re.compile(r"^[ \t]*+(?P<fence>`{3,}+|~{3,}+)[ \t]*+(?P<tag>[^\s`]*+)[^\n`]*+$")
_FORMATTER = HtmlFormatter(cssclass=_CSS_CLASS, nowrap=False)


@dataclass(frozen=True)
class Segment:
    """A piece of an answer: prose, or a fenced code block with its language tag."""

    text: str
    code: bool
    tag: str = ""


def segments(text: str) -> list[Segment]:
    """Split markdown-ish text into prose and fenced code blocks, in order. An unclosed fence
    runs to the end of the text."""
    out: list[Segment] = []
    prose: list[str] = []
    code: list[str] = []
    fence = ""
    tag = ""
    for line in text.split("\n"):
        match = _FENCE.match(line[:400]) if len(line) < 400 else None
        if not fence:
            if match:
                if prose:
                    out.append(Segment("\n".join(prose), False))
                    prose = []
                fence, tag = match["fence"], match["tag"].lower()
            else:
                prose.append(line)
        elif match and match["fence"][0] == fence[0] and len(match["fence"]) >= len(fence) \
                and not match["tag"]:
            out.append(Segment("\n".join(code), True, tag))
            code, fence, tag = [], "", ""
        else:
            code.append(line)
    if fence:
        out.append(Segment("\n".join(code), True, tag))
    if prose and any(p.strip() for p in prose):
        out.append(Segment("\n".join(prose), False))
    return out


def _lexer(tag: str) -> Lexer:
    if not tag:
        return PythonLexer()
    try:
        return get_lexer_by_name(tag)
    except ClassNotFound:
        return TextLexer()


def code_html(code: str, tag: str = "python") -> Markup:
    """One block of code, highlighted (every token escaped by Pygments)."""
    return Markup(pygments_highlight(code, _lexer(tag), _FORMATTER))


def answer_html(text: str) -> Markup:
    """A model's answer (or a challenge, or a judge's explanation) as HTML: escaped prose in
    <div class="prose">, fenced code highlighted. Text beyond MAX_CHARS is cut, with a note."""
    cut = len(text) > MAX_CHARS
    parts = []
    for segment in segments(text[:MAX_CHARS]):
        if segment.code:
            parts.append(code_html(segment.text, segment.tag))
        else:
            parts.append(Markup('<div class="prose">{}</div>').format(segment.text.strip("\n")))
    if cut:
        parts.append(Markup('<p class="note">… cut at {} of {} characters</p>')
                     .format(f"{MAX_CHARS:,}", f"{len(text):,}"))
    return Markup("").join(parts) if parts else Markup('<p class="note">(empty)</p>')


def plain_html(text: str) -> Markup:
    """Untrusted text escaped, nothing else (for one-line fields)."""
    return escape(text)


def stylesheet() -> str:
    """The CSS of the highlighted code (served as /static/highlight.css)."""
    return str(_FORMATTER.get_style_defs(f".{_CSS_CLASS}"))
