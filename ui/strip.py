"""The timeline strip: segments over the frames, and the co-denoising windows (M, S) under them, as SVG."""
from __future__ import annotations

import html
import math

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"]
WIDTH = 1000


def render_strip(data: dict, fps: float) -> str:
    """`data` from ui.timeline_rows.strip_data -> an HTML block with an inline SVG and any problems."""
    n = max(1, int(data.get("num_frames") or 1))
    windows = data.get("windows") or []
    x = lambda f: WIDTH * f / n  # noqa: E731
    m = windows[0][1] - windows[0][0] if windows else 1
    s = windows[1][0] - windows[0][0] if len(windows) > 1 else m
    rows = max(1, min(8, math.ceil(m / max(1, s))))  # overlapping windows go on separate rows
    seg_h, top, row_h = 34, 18, 7
    height = top + seg_h + 10 + rows * row_h + 18
    parts = [f'<svg viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
             f'aria-label="timeline strip" xmlns="http://www.w3.org/2000/svg" style="font:12px sans-serif">',
             f'<rect x="0" y="{top}" width="{WIDTH}" height="{seg_h}" fill="#f3d3d3"/>']  # red shows gaps
    for i, s in enumerate(data.get("segments") or []):
        a, b = max(0, s["start"]), min(n, s["end"] + 1)
        if b <= a:
            continue
        colour = PALETTE[i % len(PALETTE)]
        label = html.escape(s["prompt"] or "(empty prompt)")
        parts.append(f'<rect x="{x(a):.1f}" y="{top}" width="{x(b) - x(a):.1f}" height="{seg_h}" fill="{colour}" '
                     f'fill-opacity="0.8" stroke="white"><title>frames {a}-{b - 1}: {label}</title></rect>')
        parts.append(f'<text x="{x(a) + 4:.1f}" y="{top + 21}" fill="white" clip-path="inset(0)">'
                     f'{label[:max(1, int((x(b) - x(a)) / 7))]}</text>')
    wy = top + seg_h + 10
    for i, (a, b) in enumerate(windows):
        y = wy + (i % rows) * row_h
        spans = [(a, min(b, n))] + ([(0, b - n)] if b > n else [])  # looped windows wrap to the start
        for sa, sb in spans:
            parts.append(f'<rect x="{x(sa):.1f}" y="{y}" width="{max(1.0, x(sb) - x(sa)):.1f}" '
                         f'height="{row_h - 2}" '
                         f'rx="2" fill="#555" fill-opacity="0.55"><title>window {i + 1}: frames {a}-{b - 1}</title></rect>')
    for k in range(5):
        f = round(k * (n - 1) / 4) if n > 1 else 0
        anchor = "start" if k == 0 else ("end" if k == 4 else "middle")
        parts.append(f'<text x="{x(f + (1 if k == 4 else 0)):.1f}" y="12" text-anchor="{anchor}" fill="#666">'
                     f'{f} ({f / fps:.1f} s)</text>')
    parts.append(f'<text x="0" y="{height - 4}" fill="#666">{len(windows)} windows of M='
                 f'{(windows[0][1] - windows[0][0]) if windows else "?"} frames</text>')
    parts.append("</svg>")
    errors = data.get("errors") or []
    if errors:
        parts.append("".join(f'<p class="genl-error" style="color:#c0392b;margin:4px 0">⚠ {html.escape(e)}</p>'
                             for e in errors))
    return f'<div class="genl-strip">{"".join(parts)}</div>'
