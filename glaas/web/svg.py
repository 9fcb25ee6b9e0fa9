"""A drawing as SVG markup: each node a link (so the graph works without JavaScript too), every
text escaped, no inline style (the page's CSP forbids it): classes only, styled by glaas.css."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from glaas.web.dag import Drawing, Node

CHAR_W = 6.9  # px per character of the 12px label font, to cut labels to their box
PAD = 9


def _cut(text: str, width: float) -> str:
    room = max(4, int((width - 2 * PAD) / CHAR_W))
    return text if len(text) <= room else text[: room - 1] + "…"


def _node(i: int, n: Node) -> str:
    w, h = n.box.width, n.box.height
    classes = " ".join(["n", n.kind, *n.marks])
    rx = h / 2 if n.kind != "job" else 6
    mark = ""
    if "stale" in n.marks or "superseded" in n.marks:
        mark = f'<circle class="badge" cx="{w - 7:g}" cy="7" r="4"/>'
    return (
        f'<a href="{escape(n.href)}" class="{classes}" data-key="{escape(n.key)}" data-i="{i}" '
        f'transform="translate({n.x:.1f},{n.y:.1f})">'
        f"<title>{escape(n.title)}</title>"
        f'<rect width="{w:g}" height="{h:g}" rx="{rx:g}"/>{mark}'
        f'<text x="{PAD}" y="{h / 2 + 4:g}">{escape(_cut(n.label, w))}</text></a>'
    )


def render(d: Drawing, label: str) -> Markup:
    width, height = max(d.width, 1), max(d.height, 1)
    parts = [
        f'<svg class="dag-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} '
        f'{height:.0f}" width="{width:.0f}" height="{height:.0f}" role="group" '
        f'aria-label="{escape(label)}" data-width="{width:.0f}" data-height="{height:.0f}">',
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L8,4L0,8z"/></marker></defs>',
        '<g class="viewport">',
        '<g class="edges">',
    ]
    index = {n.key: i for i, n in enumerate(d.nodes)}
    parts.extend(f'<path d="{p}" data-f="{index[a]}" data-t="{index[b]}"/>' for p, a, b in d.edges)
    parts.append('</g><g class="nodes">')
    parts.extend(_node(i, n) for i, n in enumerate(d.nodes))
    parts.append("</g></g></svg>")
    return Markup("".join(parts))
