"""The utilisation chart: an SVG drawn on the server from the stored samples (no script, no
chart library); every text in it is escaped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from conductor.store.records import UtilisationSample

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 24, 28


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    colour: str
    value: Callable[[UtilisationSample], int]


def line_chart(
    title: str, samples: Sequence[UtilisationSample], series: Sequence[Series], since: datetime, until: datetime
) -> Markup:
    """Lines of `series` over [since, until]; the y axis from 0 to the largest value. When the
    samples begin later than `since` (a new installation), the axis begins with them."""
    if samples and samples[0].time > since and samples[0].time < until:
        since = samples[0].time
    span = max((until - since).total_seconds(), 1.0)
    clock = "%H:%M:%S" if span < 3600 else "%H:%M"
    top = max([1, *(s.value(x) for s in series for x in samples)])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(sample: UtilisationSample, value: int) -> str:
        x = LEFT + plot_w * (sample.time - since).total_seconds() / span
        y = TOP + plot_h * (1 - value / top)
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" class="axis"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" class="axis"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" class="tick">{top}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" class="tick">0</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 8}" class="tick">{escape(since.strftime(clock))}</text>',
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 8}" text-anchor="end" class="tick">'
        f"{escape(until.strftime(clock))} UTC</text>",
    ]
    legend_x = LEFT + plot_w
    for s in reversed(series):
        legend_x -= 9 * len(s.label) + 24
        parts.append(f'<rect x="{legend_x}" y="7" width="10" height="10" fill="{escape(s.colour)}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="16" class="legend">{escape(s.label)}</text>')
    for s in series:
        points = " ".join(xy(x, s.value(x)) for x in samples)
        if len(samples) == 1:
            parts.append(f'<circle cx="{xy(samples[0], s.value(samples[0])).split(",")[0]}" '
                         f'cy="{xy(samples[0], s.value(samples[0])).split(",")[1]}" r="3" fill="{escape(s.colour)}"/>')
        elif samples:
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{escape(s.colour)}" stroke-width="2" '
                f'data-series="{escape(s.label)}"/>'
            )
    if not samples:
        parts.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" class="tick">'
                     "no samples yet</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


CPU_SERIES = (
    Series("total CPUs", "#9aa5b1", lambda s: s.total_cpus),
    Series("used CPUs", "#1f6feb", lambda s: s.used_cpus),
)
JOB_SERIES = (
    Series("running jobs", "#2da44e", lambda s: s.running_jobs),
    Series("pending jobs", "#d4a72c", lambda s: s.pending_jobs),
)
