"""User-supplied text on the dashboard, shown as text and never as Markdown or HTML.

Streamlit renders the body of `st.error/warning/info/success/markdown/caption/toast`, headers
and widget labels as Markdown (GitHub's dialect plus Streamlit's emoji, `:color[...]`
directives and `$math$`). A CSV cell, run name, file name or an error message quoting them
may carry `![x](http://tracker/...)` (an image the viewer's browser fetches), a link, or
raw HTML; passed through `md()` it reads as the same characters and renders as nothing else.

`md()` backslash-escapes what starts a construct, where it starts one, so messages stay
readable (`'--where: expected a value'` is left as it is): anywhere the emphasis, code,
link, image, HTML, table, strikethrough, entity, math and e-mail characters
(`\\ * _ ` [ ] < | ~ $ & @`); a colon followed by anything but a space (emoji and icon
shortcodes, `:red[...]` directives, `http:` autolinks); at a line's start the block
markers (`# + - = >` and `1.`/`1)` lists); the `.` of `www.` (an autolink). A line's
leading spaces become no-break spaces (no indented code block).
"""

from __future__ import annotations

import re

_ANYWHERE = re.compile(r"([\\`*_\[\]<|~$&@])")
_COLON = re.compile(r":(?=\S)")
_LINE_START = re.compile(r"(?m)^(\s*)([#+\-=>])")
_LIST_NUMBER = re.compile(r"(?m)^(\s*\d+)([.)])")
_AUTOLINK_DOT = re.compile(r"(?i)(?<=www)\.")
_INDENT = re.compile(r"(?m)^[ \t]+")
NBSP = "\u00a0"


def md(text: object) -> str:
    """`text` (any object, through `str`) escaped for a Streamlit Markdown element."""
    escaped = _ANYWHERE.sub(r"\\\1", str(text))
    escaped = _COLON.sub(r"\\:", escaped)
    escaped = _LINE_START.sub(r"\1\\\2", escaped)
    escaped = _LIST_NUMBER.sub(r"\1\\\2", escaped)
    escaped = _AUTOLINK_DOT.sub(r"\\.", escaped)
    # A line's indentation in no-break spaces: shown alike, never an indented code block.
    return _INDENT.sub(lambda m: NBSP * len(m.group(0).expandtabs(4)), escaped)


def code(text: object) -> str:
    """`text` inside an inline code span (shown verbatim, monospace), whatever backticks
    it holds: the fence is one backtick longer than its longest run."""
    value = str(text).replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}"
