"""Small server-rendered SVG charts, so the dashboard needs no JavaScript."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

BAR_HEIGHT = 18
BAR_GAP = 6
LABEL_WIDTH = 160
CHART_WIDTH = 520


def bar_chart(title: str, items: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """Render horizontal bars, one per (label, value), scaled to the largest value."""
    if not items:
        return Markup('<p class="empty">{}: no data</p>').format(title)

    largest = max(value for _, value in items) or 1
    bar_space = CHART_WIDTH - LABEL_WIDTH - 60
    height = len(items) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    parts = [
        f'<svg class="chart" role="img" width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}"><title>{escape(title)}</title>'
    ]
    for index, (label, value) in enumerate(items):
        y = BAR_GAP + index * (BAR_HEIGHT + BAR_GAP)
        width = max(1, round(bar_space * value / largest)) if value else 0
        shown = f"{value:g}{unit}"
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width}" height="{BAR_HEIGHT}"/>'
            f'<text x="{LABEL_WIDTH + width + 4}" y="{y + 13}">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(title: str, items: Sequence[tuple[str, float]]) -> Markup:
    """Render vertical columns, e.g. dispatches per day, labelled under the first and last."""
    if not items:
        return Markup('<p class="empty">{}: no data</p>').format(title)

    height = 140
    plot = height - 24
    step = CHART_WIDTH / len(items)
    largest = max(value for _, value in items) or 1
    parts = [
        f'<svg class="chart" role="img" width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}"><title>{escape(title)}</title>'
    ]
    for index, (label, value) in enumerate(items):
        bar = round(plot * value / largest)
        x = index * step + 1
        parts.append(
            f'<rect x="{x:.1f}" y="{plot - bar}" width="{max(step - 2, 1):.1f}" height="{bar}">'
            f"<title>{escape(label)}: {value:g}</title></rect>"
        )
    first, last = items[0][0], items[-1][0]
    parts.append(f'<text x="0" y="{height - 6}">{escape(first)}</text>')
    parts.append(
        f'<text x="{CHART_WIDTH}" y="{height - 6}" text-anchor="end">{escape(last)}</text></svg>'
    )
    return Markup("".join(parts))
