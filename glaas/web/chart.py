"""The compute page's chart: cost per day as stacked bars, one colour per row of the report
(the most expensive rows; the rest as "others"), drawn as SVG on the server. Classes only, no
inline style (the CSP forbids it): glaas.css colours `s0`...`s6`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape

from markupsafe import Markup

from roar.registry import ComputeReport

SERIES = 6  # rows with a colour of their own; the rest are "others"
W, H, LEFT, BOTTOM, TOP = 720.0, 220.0, 56.0, 26.0, 10.0


MAX_DAYS = 400  # a longer window is charted over its last 400 days (the table has it all)


def _days(since: float, until: float) -> list[str]:
    since = max(since, until - (MAX_DAYS - 1) * 86400)  # 99999w reaches before year 1
    first = datetime.fromtimestamp(since, UTC).date()
    last = datetime.fromtimestamp(until, UTC).date()
    return [
        (first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range((last - first).days + 1)
    ]


def legend(report: ComputeReport) -> list[tuple[str, str]]:
    """(class, name) of each colour, in stacking order."""
    keys = [r.key for r in report.rows[:SERIES]]
    shown = [(f"s{i}", k) for i, k in enumerate(keys)]
    if len(report.rows) > SERIES:
        shown.append((f"s{SERIES}", "others"))
    return shown


def render(report: ComputeReport) -> Markup:
    days = _days(report.since, report.until)
    index = {r.key: i for i, r in enumerate(report.rows[:SERIES])}
    stacks: dict[str, list[float]] = {d: [0.0] * (SERIES + 1) for d in days}
    for p in report.series:
        if p.day in stacks:
            stacks[p.day][index.get(p.key, SERIES)] += p.cost
    top = max((sum(v) for v in stacks.values()), default=0.0) or 1.0
    plot_w, plot_h = W - LEFT - 8, H - TOP - BOTTOM
    step = plot_w / max(len(days), 1)
    bar = max(step * 0.8, 1.0)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:g} {H:g}" '
        f'role="img" aria-label="cost per day, by {escape(report.by)}">',
        f'<line class="axis" x1="{LEFT:g}" y1="{TOP + plot_h:g}" x2="{W - 8:g}" '
        f'y2="{TOP + plot_h:g}"/>',
        f'<text class="tick" x="{LEFT - 6:g}" y="{TOP + 4:g}" text-anchor="end">{top:.2f}</text>',
        f'<text class="tick" x="{LEFT - 6:g}" y="{TOP + plot_h:g}" text-anchor="end">0</text>',
    ]
    for i, day in enumerate(days):
        x = LEFT + i * step + (step - bar) / 2
        y = TOP + plot_h
        for s, cost in enumerate(stacks[day]):
            if cost <= 0:
                continue
            h = cost / top * plot_h
            y -= h
            name = "others" if s == SERIES else report.rows[s].key
            parts.append(
                f'<rect class="s{s}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                f"<title>{escape(day)} {escape(name)}: {cost:.2f}</title></rect>"
            )
        last = i == len(days) - 1
        if i == 0 or last or (len(days) > 2 and i == len(days) // 2):
            anchor = "start" if i == 0 else "end" if last else "middle"
            at = x if i == 0 else x + bar if last else x + bar / 2
            parts.append(
                f'<text class="tick" x="{at:.1f}" y="{H - 8:g}" '
                f'text-anchor="{anchor}">{escape(day)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
