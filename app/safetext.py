"""User-supplied text on the dashboard, shown as text and never as Markdown or HTML.

Streamlit renders the body of `st.error/warning/info/success/markdown/caption/toast`, headers
and widget labels as Markdown (GitHub's dialect plus Streamlit's emoji, `:color[...]`
directives and `$math$`). A CSV cell, run name, file name or an error message quoting them
may carry `![x](http://tracker/...)` (an image the viewer's browser fetches), a link, or
raw HTML; passed through `md()` it reads as the same characters and renders as nothing else.

`md()` backslash-escapes every ASCII punctuation character CommonMark lets one escape,
except a few that start no construct (`. , ' " ? ; / %`), so messages stay readable in
tests and logs; the `.` of `www.` (an autolink) and of `1.` at a line's start (a list)
is escaped too.
"""

from __future__ import annotations

import re

# Each starts (or closes) a Markdown, GFM, HTML, emoji, directive or math construct.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-!|~$:=&@^])")
_AUTOLINK_DOT = re.compile(r"(?i)(?<=www)\.")
_LIST_DOT = re.compile(r"(?m)^(\s*\d+)\.")


def md(text: object) -> str:
    """`text` (any object, through `str`) escaped for a Streamlit Markdown element."""
    escaped = _SPECIAL.sub(r"\\\1", str(text))
    escaped = _AUTOLINK_DOT.sub(r"\\.", escaped)
    return _LIST_DOT.sub(r"\1\\.", escaped)


def code(text: object) -> str:
    """`text` inside an inline code span (shown verbatim, monospace), whatever backticks
    it holds: the fence is one backtick longer than its longest run."""
    value = str(text).replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}"
