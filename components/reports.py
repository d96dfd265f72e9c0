"""Pages people look at: the tuning report and the champion-versus-challenger comparison, as self-contained HTML.

The KFP UI renders an ``HTML`` artifact in a sandboxed iframe with no network, so each page is one file with inline
SVG charts and no script. Locally the run writes them under its run directory and the summary names them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from components.katib.results import best_trial, summary

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}tr.best td{background:#fff4c2;font-weight:bold}td.name{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}figure{margin:0}figcaption{font-size:.9em;color:#555}
"""
_WIDTH, _HEIGHT, _PAD = 420, 260, 44


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def scatter_svg(points: Sequence[tuple[float, float, bool]], *, x_label: str, y_label: str, log_x: bool = False,
                connect: bool = False) -> str:
    """An SVG scatter plot; points are ``(x, y, highlighted)``, the highlighted one drawn as a larger red mark."""
    if not points:
        return '<svg role="img" width="0" height="0"></svg>'
    xs = [math.log10(x) if log_x else x for x, _, _ in points]
    ys = [y for _, y, _ in points]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(ys), max(ys)
    x_span = (x_high - x_low) or 1.0
    y_span = (y_high - y_low) or 1.0

    def px(x: float) -> float:
        return _PAD + (x - x_low) / x_span * (_WIDTH - 2 * _PAD)

    def py(y: float) -> float:
        return _HEIGHT - _PAD - (y - y_low) / y_span * (_HEIGHT - 2 * _PAD)

    parts = [f'<svg role="img" xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}">',
             f'<line x1="{_PAD}" y1="{_HEIGHT - _PAD}" x2="{_WIDTH - _PAD / 2}" y2="{_HEIGHT - _PAD}" stroke="#888"/>',
             f'<line x1="{_PAD}" y1="{_PAD / 2}" x2="{_PAD}" y2="{_HEIGHT - _PAD}" stroke="#888"/>']
    x_ticks = (x_low, x_high)
    for tick in x_ticks:
        shown = 10 ** tick if log_x else tick
        parts.append(f'<text x="{px(tick):.1f}" y="{_HEIGHT - _PAD + 14}" font-size="10" '
                     f'text-anchor="middle">{_fmt(shown)}</text>')
    for tick in (y_low, y_high):
        parts.append(f'<text x="{_PAD - 4}" y="{py(tick) + 3:.1f}" font-size="10" text-anchor="end">'
                     f"{_fmt(tick)}</text>")
    parts.append(f'<text x="{_WIDTH / 2}" y="{_HEIGHT - 8}" font-size="11" text-anchor="middle">'
                 f'{html.escape(x_label)}{" (log scale)" if log_x else ""}</text>')
    parts.append(f'<text x="12" y="{_HEIGHT / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {_HEIGHT / 2})">{html.escape(y_label)}</text>')
    if connect and len(points) > 1:
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
        parts.append(f'<polyline points="{path}" fill="none" stroke="#9bb" stroke-width="1"/>')
    for (x, y), (_, _, best) in zip(zip(xs, ys, strict=True), points, strict=True):
        if best:
            parts.append(f'<circle class="best" cx="{px(x):.1f}" cy="{py(y):.1f}" r="6" fill="#d33">'
                         f"<title>best: {_fmt(10 ** x if log_x else x)}, {_fmt(y)}</title></circle>")
        else:
            parts.append(f'<circle class="point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="#2a6fb0">'
                         f"<title>{_fmt(10 ** x if log_x else x)}, {_fmt(y)}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _trial_rows(result: dict[str, Any], metric: str, goal: str) -> list[dict[str, Any]]:
    rows = []
    for trial in result.get("trials", []):
        metrics = {m["name"]: m for m in (trial.get("observation") or {}).get("metrics") or []}
        observed = metrics.get(metric, {})
        value = _number(observed.get("min" if goal == "minimize" else "max")) or _number(observed.get("latest"))
        rows.append({"name": trial.get("name", "?"), "condition": trial.get("condition", "?"),
                     "params": {a["name"]: a["value"] for a in trial.get("parameterAssignments") or []},
                     "value": value})
    return rows


def tuning_report(result: dict[str, Any]) -> str:
    """The tuning report: outcome, the objective by trial and each hyperparameter against it, best trial marked."""
    experiment = result["experiment"]
    spec = experiment.get("spec", {})
    metric = spec.get("objective", {}).get("objectiveMetricName", "objective")
    goal = spec.get("objective", {}).get("type", "minimize")
    outcome = summary(result)
    try:
        best_params, best_value = best_trial(result)
    except Exception:  # a failed experiment still gets its page: the table shows why
        best_params, best_value = {}, None
    rows = _trial_rows(result, metric, goal)
    best_name = outcome.get("best_trial")
    scored = [(index, row) for index, row in enumerate(rows, 1) if row["value"] is not None]
    by_trial = scatter_svg([(i, r["value"], r["name"] == best_name) for i, r in scored], x_label="trial",
                           y_label=metric, connect=True)
    charts = [f"<figure>{by_trial}<figcaption>{html.escape(metric)} by trial ({goal})</figcaption></figure>"]
    for parameter in spec.get("parameters", []):
        name = parameter["name"]
        points = [(_number(r["params"].get(name)), r["value"], r["name"] == best_name) for _, r in scored]
        numeric = [(x, y, best) for x, y, best in points if x is not None]
        if not numeric:
            continue
        log_x = all(x > 0 for x, _, _ in numeric) and max(x for x, _, _ in numeric) / min(
            x for x, _, _ in numeric) >= 100
        charts.append(f"<figure>{scatter_svg(numeric, x_label=name, y_label=metric, log_x=log_x)}"
                      f"<figcaption>{html.escape(name)} against {html.escape(metric)}</figcaption></figure>")
    names = [p["name"] for p in spec.get("parameters", [])]
    header = "".join(f"<th>{html.escape(n)}</th>" for n in ["trial", "condition", *names, metric])
    body_rows = []
    for row in rows:
        cells = [f'<td class="name">{html.escape(row["name"])}</td>',
                 f'<td class="name">{html.escape(row["condition"])}</td>',
                 *(f"<td>{html.escape(str(row['params'].get(n, '')))}</td>" for n in names),
                 f"<td>{_fmt(row['value']) if row['value'] is not None else '-'}</td>"]
        css = ' class="best"' if row["name"] == best_name else ""
        body_rows.append(f"<tr{css}>{''.join(cells)}</tr>")
    best_line = (f"best trial <b>{html.escape(str(best_name))}</b>: {html.escape(metric)} = {_fmt(best_value)} with "
                 + ", ".join(f"{html.escape(k)}={html.escape(str(v))}" for k, v in best_params.items())
                 if best_value is not None else "no trial reported the objective")
    body = (f"<p>{outcome['outcome']} ({html.escape(str(outcome['reason']))}): {outcome['succeeded']} of "
            f"{outcome['trials']} trials succeeded, {outcome['failed']} failed; executor: "
            f"{html.escape(str(outcome['executor']))}. {best_line}.</p>"
            f'<div class="charts">{"".join(charts)}</div>'
            f'<table id="trials"><tr>{header}</tr>{"".join(body_rows)}</table>')
    return _page(f"Tuning: {outcome['experiment']}", body)


def promotion_report(decision: dict[str, Any]) -> str:
    """The champion-versus-challenger comparison on held-out data, and the decision."""
    metric = str(decision["metric"])
    challenger, champion = decision["challenger_value"], decision.get("champion_value")
    rows = [("challenger", decision["challenger_version"], challenger)]
    if decision.get("previous_champion") is not None:
        rows.append(("champion before this run", decision["previous_champion"], champion))
    values = [v for _, _, v in rows if v is not None]
    top = max(values) if values else 1.0
    bars = []
    for index, (role, version, value) in enumerate(rows):
        width = 0 if value is None or top <= 0 else 300 * value / top
        colour = "#d33" if version == decision["champion_version"] else "#2a6fb0"
        bars.append(f'<rect x="170" y="{10 + index * 34}" width="{width:.1f}" height="24" fill="{colour}"/>'
                    f'<text x="164" y="{27 + index * 34}" font-size="12" text-anchor="end">'
                    f"{html.escape(role)} (v{html.escape(str(version))})</text>"
                    f'<text x="{176 + width:.1f}" y="{27 + index * 34}" font-size="12">'
                    f"{_fmt(value) if value is not None else '-'}</text>")
    chart = (f'<svg role="img" xmlns="http://www.w3.org/2000/svg" width="560" height="{20 + 34 * len(rows)}">'
             f'{"".join(bars)}</svg>')
    best = ' class="best"'
    table = "".join(f'<tr{best if version == decision["champion_version"] else ""}>'
                    f'<td class="name">{html.escape(role)}</td><td>{html.escape(str(version))}</td>'
                    f"<td>{_fmt(value) if value is not None else '-'}</td></tr>" for role, version, value in rows)
    verdict = "promoted" if decision["promoted"] else "kept the champion"
    body = (f"<p><b>{verdict}</b>: {html.escape(str(decision['reason']))}</p>"
            f"<figure>{chart}<figcaption>{html.escape(metric)} on held-out data (the champion after this run in "
            f"red)</figcaption></figure>"
            f'<table id="comparison"><tr><th>model</th><th>version</th><th>{html.escape(metric)}</th></tr>{table}'
            f"</table>")
    return _page(f"Promotion: {decision['model_name']}", body)
