"""A saved fit as a report to take away: Markdown, or one self-contained HTML file.

Pure (no Streamlit): ``markdown(result, ...)`` and ``html(result, ...)`` return text. Each
report carries the parameters with their intervals and flags, the figures (images given
by the caller, embedded as data URIs), the data hash, the options, and the items of Li,
Kudugunta and Zettlemoyer's checklist ("(Mis)Fitting: A Survey of Scaling Laws", 2025)
that a fit can answer: functional form, how N and C were counted, points used and
excluded, objective, optimiser, starts, interval method and extrapolation test.

User text (project and run names, filters, selections) is escaped: HTML-escaped in the
HTML report; in Markdown backslash-escaped (`safetext.md`) or inside code spans/fences,
and never inside a link or an image's text, whose targets are only our own data URIs.
"""

from __future__ import annotations

import base64
import html as htmllib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.dashboard.safetext import code, md

CHECKLIST_SOURCE = (
    'Li, Kudugunta and Zettlemoyer 2025, "(Mis)Fitting: A Survey of Scaling Laws", '
    "their reporting checklist (the items a fit can answer)"
)
OPTIMISER = (
    "batched Levenberg-Marquardt from every start at once (IRLS on the objective), then "
    "scipy's L-BFGS-B polish of the best {n_polish} distinct optima"
)


@dataclass(frozen=True)
class Image:
    """A figure as the report embeds it."""

    caption: str
    mime: str  # image/png or image/svg+xml
    data: bytes

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class Source:
    """Where the fit lives (all optional: a fit not yet saved has no id)."""

    fit_id: int | None = None
    project: str | None = None
    created_at: str | None = None


# --- the content, as plain text ---------------------------------------------------------


def checklist(result: Any, extrapolation: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(item, answer) pairs of the checklist, as plain (unescaped) text."""
    return [
        ("Functional form", functional_form(result)),
        ("How N and C were counted", accounting_text(result)),
        ("Points used", points_used(result)),
        ("Points excluded", points_excluded(result)),
        ("Objective", objective_text(result)),
        ("Optimiser", optimiser_text(result)),
        ("Starts", starts_text(result)),
        ("Interval method", interval_text(result)),
        ("Extrapolation test", extrapolation_text(result, extrapolation)),
    ]


def functional_form(result: Any) -> str:
    from fitting.laws import LAWS

    law = LAWS.get(result.law)
    return f"{result.law}: {law.formula}" if law is not None else f"{result.law} (unknown law)"


def accounting_text(result: Any) -> str:
    from fitting.accounting import Accounting

    stored = (result.options or {}).get("accounting")
    text = Accounting.coerce(stored).describe()
    return text if stored else f"{text} (none stored with the fit: the defaults)"


def _selection_report(result: Any) -> dict[str, Any]:
    return dict((result.selection or {}).get("report") or {})


def points_used(result: Any) -> str:
    report = _selection_report(result)
    text = f"{result.n_points} points"
    if report:
        text += f" ({report.get('rows_used', result.n_points)} of {report.get('rows_in')} rows"
        if report.get("runs_used"):
            text += f", {report['runs_used']} runs"
        if report.get("split"):
            text += f", split {report['split']}"
        text += ")"
    ranges = result.data_range or {}
    if ranges:
        text += "; fitted range " + ", ".join(
            f"{col} {lo:.3g} to {hi:.3g}" for col, (lo, hi) in ranges.items()
        )
    return text


def points_excluded(result: Any) -> str:
    parts = []
    for why, count in (_selection_report(result).get("dropped") or {}).items():
        parts.append(f"{count} dropped: {why}")
    selection = result.selection or {}
    for where in selection.get("where") or []:
        parts.append(f"filter: {where}")
    if selection.get("exclude"):
        parts.append("left out by hand: " + ", ".join(map(str, selection["exclude"])))
    for run, why in ((result.checks or {}).get("excluded_runs") or {}).items():
        parts.append(f"run {run} left out: {why}")
    return "; ".join(parts) if parts else "none"


def objective_text(result: Any) -> str:
    opts = result.options or {}
    residuals = opts.get("residuals", "log")
    on = "log loss (log observed - log predicted)" if residuals == "log" else "loss"
    if opts.get("loss", "huber") == "huber":
        return f"sum of Huber losses (delta = {opts.get('delta', 1e-3):g}) of residuals in {on}"
    return f"sum of squared residuals in {on}"


def optimiser_text(result: Any) -> str:
    text = OPTIMISER.format(n_polish=(result.options or {}).get("n_polish", 4))
    return text + ("" if result.converged else "; did not converge to a determined optimum")


def starts_text(result: Any) -> str:
    starts = (result.options or {}).get("starts")
    text = f"{result.n_starts} starts: the law's grid of starting points plus its guess"
    if isinstance(starts, str) and starts == "guess":
        text = f"{result.n_starts} start: the law's guess only"
    elif starts:
        text += " plus the user's starts"
    fixed = (result.options or {}).get("fix") or {}
    if fixed:
        text += "; fixed: " + ", ".join(f"{k} = {v:g}" for k, v in fixed.items())
    return text


def interval_text(result: Any) -> str:
    text = f"{round(100 * float(result.level))}% intervals, {result.method_text()}"
    u = result.uncertainty or {}
    if u.get("residual_sd") is not None:
        text += f"; prediction band adds a residual scale of {float(u['residual_sd']):.3g}"
    return text


def extrapolation_text(result: Any, extrapolation: dict[str, Any] | None) -> str:
    test = extrapolation or (result.checks or {}).get("extrapolation")
    if not test:
        return "not run (refit without the largest-scale points to score a prediction)"
    return (
        f"refit without the {test['n_heldout']} point(s) at or above "
        f"{test['scale_threshold']:.3g} ({test['n_train']} kept): mean relative error "
        f"{test['mean_rel_error']:.3%}, worst {test['max_rel_error']:.3%}"
    )


def parameter_rows(result: Any) -> list[dict[str, str]]:
    return [
        {
            "parameter": name,
            "value": f"{float(value):.6g}",
            "stderr": f"{float((result.stderr or {}).get(name, float('nan'))):.3g}",
            "interval": result.interval_text(name),
            "flags": ", ".join(result.flags(name)),
        }
        for name, value in result.params.items()
    ]


def _json(value: Any) -> str:
    from fitting.result import jsonable

    return json.dumps(jsonable(value), indent=2, sort_keys=True, default=str)


def title(result: Any, source: Source) -> str:
    where = f"fit {source.fit_id}" if source.fit_id is not None else "unsaved fit"
    return f"Scaling-law fit report: {result.law} ({where})"


def _source_line(result: Any, source: Source) -> list[tuple[str, str]]:
    pairs = []
    if source.project is not None:
        pairs.append(("project", str(source.project)))
    if source.created_at:
        pairs.append(("saved", str(source.created_at)))
    pairs += [
        ("data hash (SHA-256)", result.data_hash or "(none)"),
        ("code version", result.code_version or "(none)"),
    ]
    return pairs


# --- Markdown -----------------------------------------------------------------------------


def _fence(text: str, info: str = "") -> str:
    """A fenced block longer than any backtick run inside: the text stays verbatim."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _cell(text: str) -> str:
    return md(text).replace("\n", " ")


def markdown(
    result: Any,
    *,
    source: Source | None = None,
    images: Sequence[Image] = (),
    extrapolation: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The report as Markdown; `images` are embedded as data-URI images."""
    source = source or Source()
    out = [f"# {md(title(result, source))}", ""]
    out += [f"- {md(k)}: {code(v)}" for k, v in _source_line(result, source)]
    out += ["", "## Parameters", "", "| parameter | value | stderr | interval | flags |"]
    out.append("|---|---|---|---|---|")
    for row in parameter_rows(result):
        # Names and flags may carry user text (a group's name); the numbers are ours.
        cells = [_cell(v) if k in ("parameter", "flags") else v for k, v in row.items()]
        out.append("| " + " | ".join(cells) + " |")
    doubts = result.doubts()
    out += ["", "## Flags", ""]
    out += [f"- {md(d)}" for d in doubts] if doubts else ["- none"]
    out += ["", "## Checklist", "", f"After {md(CHECKLIST_SOURCE)}.", ""]
    out += [f"- **{md(item)}**: {md(answer)}" for item, answer in checklist(result, extrapolation)]
    for i, image in enumerate(images, start=1):
        out += ["", f"## Figure {i}", "", f"![Figure {i}]({image.data_uri()})", ""]
        out.append(md(image.caption))
    out += [f"> {md(note)}" for note in notes]
    out += ["", "## Options", "", _fence(_json(result.options or {}), "json")]
    out += ["", "## Selection", "", _fence(_json(result.selection or {}), "json"), ""]
    return "\n".join(out)


# --- HTML ---------------------------------------------------------------------------------

_CSS = """
body{font-family:Arial,Helvetica,sans-serif;max-width:60em;margin:2em auto;color:#111}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em}
th{background:#f4f4f4;text-align:left}pre{background:#f7f7f7;padding:1em;overflow:auto}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}dt{font-weight:bold}
dd{margin:0 0 .6em 1.5em}
"""
# Nothing in the file may fetch anything: images are data URIs, the style is inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(text: Any) -> str:
    return htmllib.escape(str(text), quote=True)


def html(
    result: Any,
    *,
    source: Source | None = None,
    images: Sequence[Image] = (),
    extrapolation: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The report as one self-contained HTML document (figures as data-URI images)."""
    source = source or Source()
    head = title(result, source)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{_e(head)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(head)}</h1>",
        "<ul>",
        *[f"<li>{_e(k)}: <code>{_e(v)}</code></li>" for k, v in _source_line(result, source)],
        "</ul>",
        "<h2>Parameters</h2>",
        "<table><tr><th>parameter</th><th>value</th><th>stderr</th><th>interval</th>"
        "<th>flags</th></tr>",
    ]
    for row in parameter_rows(result):
        out.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row.values()) + "</tr>")
    out.append("</table><h2>Flags</h2><ul>")
    out += [f"<li>{_e(d)}</li>" for d in result.doubts()] or ["<li>none</li>"]
    out += ["</ul>", "<h2>Checklist</h2>", f"<p>After {_e(CHECKLIST_SOURCE)}.</p>", "<dl>"]
    for item, answer in checklist(result, extrapolation):
        out.append(f"<dt>{_e(item)}</dt><dd>{_e(answer)}</dd>")
    out.append("</dl>")
    for i, image in enumerate(images, start=1):
        out.append(
            f'<figure><img alt="Figure {i}" src="{image.data_uri()}">'
            f"<figcaption>Figure {i}. {_e(image.caption)}</figcaption></figure>"
        )
    out += [f"<p><em>{_e(note)}</em></p>" for note in notes]
    out += [
        "<h2>Options</h2>",
        f"<pre>{_e(_json(result.options or {}))}</pre>",
        "<h2>Selection</h2>",
        f"<pre>{_e(_json(result.selection or {}))}</pre>",
        "</body></html>",
    ]
    return "\n".join(out)
