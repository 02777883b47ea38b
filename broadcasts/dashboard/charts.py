"""Charts as inline SVG, drawn on the server (pure: no ORM, no JavaScript, nothing fetched).

Each function takes plain numbers and labels and returns SVG markup with every text escaped, so a
template can include it as is. Colours come from one palette; every chart has a <title> and the figures
in text as well, for screen readers and for tests.
"""

from __future__ import annotations

from html import escape

PALETTE = {"requested": "#8e99a8", "confirmed": "#1a7f37", "revoked": "#cf222e", "expired": "#bf8700",
           "optins": "#1a7f37", "optouts": "#cf222e", "delivered": "#1a7f37", "failed": "#cf222e",
           "deferred": "#bf8700", "sent": "#0969da", "queued": "#8e99a8", "skipped": "#6e7781"}
DEFAULT_COLOUR = "#0969da"


def _colour(name: str) -> str:
    return PALETTE.get(name, DEFAULT_COLOUR)


def _id(css_id: str) -> str:
    return f' id="{escape(css_id)}"' if css_id else ""


def _nice_max(value: int) -> int:
    """A round upper bound for an axis: 1, 2, 5 × a power of ten, at least 1."""
    if value <= 1:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if value <= step * factor:
                return step * factor
        step *= 10


def line_chart(*, title: str, labels: list[str], series: dict[str, list[int]], width: int = 560, height: int = 180,
               css_id: str = "") -> str:
    """Daily counts, one polyline per series, with the y-axis maximum and the first and last day labelled."""
    left, right, top, bottom = 36, 8, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max((max(values, default=0) for values in series.values()), default=0))
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: int) -> float:
        return top + plot_h - plot_h * v / peak

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart line-chart" role="img" viewBox="0 0 {width} {height}"'
             f' width="{width}" height="{height}"{_id(css_id)}>',
             f"<title>{escape(title)}</title>",
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#d0d7de"/>',
             f'<line x1="{left}" y1="{top}" x2="{left + plot_w}" y2="{top}" stroke="#eaeef2"/>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="10" fill="#57606a">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10" fill="#57606a">0</text>']
    if labels:
        parts.append(f'<text x="{left}" y="{height - 6}" font-size="10" fill="#57606a">{escape(labels[0])}</text>')
        parts.append(f'<text x="{left + plot_w}" y="{height - 6}" text-anchor="end" font-size="10" fill="#57606a">'
                     f"{escape(labels[-1])}</text>")
    for name, values in series.items():
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        colour = _colour(name)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}" data-series="{escape(name)}">'
                     f"<title>{escape(name)}: {sum(values)} in total</title></polyline>")
        for i, v in enumerate(values):
            if v:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                             f"<title>{escape(labels[i] if i < len(labels) else '')} {escape(name)}: {v}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def duration_label(seconds: float | None) -> str:
    """A wait as people read it: `45 s`, `12 min 5 s`, `3 h 20 min`; `–` for none."""
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# Round upper bounds for a time axis, in seconds: 1, 5, 15, 30 min, 1, 2, 4, 8, 12 h, 1 day, then days.
DURATION_STEPS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400)


def _nice_duration_max(seconds: float) -> int:
    for step in DURATION_STEPS:
        if seconds <= step:
            return step
    return 86400 * -(-int(seconds) // 86400)


def duration_bar_chart(*, title: str, labels: list[str], values: list[float | None], width: int = 560,
                       height: int = 180, css_id: str = "") -> str:
    """Durations in seconds, one vertical bar per day (none where the value is None), the y-axis maximum and
    the first and last day labelled; each bar's <title> gives its day and duration."""
    unit_label = duration_label
    left, right, top, bottom = 56, 8, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_duration_max(max((v for v in values if v is not None), default=0))
    n = max(len(values), 1)
    slot = plot_w / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bar-chart" role="img" viewBox="0 0 {width} {height}"'
             f' width="{width}" height="{height}"{_id(css_id)}>',
             f"<title>{escape(title)}</title>",
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#d0d7de"/>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="10" fill="#57606a">'
             f"{escape(unit_label(peak))}</text>",
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10" fill="#57606a">0</text>']
    if labels:
        parts.append(f'<text x="{left}" y="{height - 6}" font-size="10" fill="#57606a">{escape(labels[0])}</text>')
        parts.append(f'<text x="{left + plot_w}" y="{height - 6}" text-anchor="end" font-size="10" fill="#57606a">'
                     f"{escape(labels[-1])}</text>")
    for i, value in enumerate(values):
        if value is None:
            continue
        h = max(plot_h * value / peak, 1)
        label = labels[i] if i < len(labels) else ""
        parts.append(f'<rect x="{left + i * slot + slot * 0.15:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.7:.1f}"'
                     f' height="{h:.1f}" fill="{DEFAULT_COLOUR}" data-value="{value:g}">'
                     f"<title>{escape(label)}: {escape(unit_label(value))}</title></rect>")
    parts.append("</svg>")
    return "".join(parts)


def funnel(*, title: str, stages: list[tuple[str, int]], width: int = 360, css_id: str = "") -> str:
    """Horizontal bars, one per stage, scaled to the largest, each with its name and count."""
    bar_h, gap, label_w = 22, 6, 96
    height = len(stages) * (bar_h + gap) + gap
    peak = max((n for _, n in stages), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart funnel" role="img" viewBox="0 0 {width} {height}"'
             f' width="{width}" height="{height}"{_id(css_id)}>',
             f"<title>{escape(title)}</title>"]
    for i, (name, n) in enumerate(stages):
        y = gap + i * (bar_h + gap)
        w = max((width - label_w - 48) * n / peak, 1 if n else 0)
        parts.append(f'<text x="0" y="{y + 15}" font-size="12" fill="#24292f">{escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3" fill="{_colour(name)}"'
                     f' data-stage="{escape(name)}" data-count="{n}"><title>{escape(name)}: {n}</title></rect>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12" fill="#24292f" class="count">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(*, title: str, parts_: list[tuple[str, int]], width: int = 240, height: int = 14) -> str:
    """One bar split by state (delivered, failed, deferred …), proportional to the counts."""
    total = sum(n for _, n in parts_)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart stacked" role="img" viewBox="0 0 {width} {height}"'
           f' width="{width}" height="{height}"><title>{escape(title)}</title>',
           f'<rect x="0" y="0" width="{width}" height="{height}" rx="3" fill="#eaeef2"/>']
    x = 0.0
    for name, n in parts_:
        if not n or not total:
            continue
        w = width * n / total
        out.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{_colour(name)}">'
                   f"<title>{escape(name)}: {n}</title></rect>")
        x += w
    out.append("</svg>")
    return "".join(out)
