"""A small SVG writer for the run report's figures: scales, axes, markers, bars, legends.

Coordinates are SVG user units (CSS pixels at 100%); ``y`` grows downwards. A figure is an
:class:`Svg` canvas the caller draws on through :class:`Panel` (a plot box with an x and a y
:class:`Scale`); :meth:`Svg.render` returns the document as text, usable as a ``.svg`` file and
inline in HTML. All text is XML-escaped. No matplotlib: a figure of a few thousand elements is
written in milliseconds.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: matplotlib's "tab10" cycle (C0..C9), so figures keep the colours they had
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
         "#7f7f7f", "#bcbd22", "#17becf")
FONT = "DejaVu Sans,Arial,Helvetica,sans-serif"
#: mean glyph advance as a fraction of the font size (legend and label layout)
CHAR_WIDTH = 0.6
#: dash patterns by name (line styles)
DASHES = {"-": "", "--": "6,3", "-.": "6,2,1.5,2", ":": "1.5,2.5", "long": "8,2",
          "dashdot2": "5,2,1.5,2,1.5,2"}

_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076"
                                            "\u2077\u2078\u2079")


def esc(text: object) -> str:
    """``text`` escaped for XML character data and attribute values."""
    return html.escape(str(text), quote=True)


def color(name: str) -> str:
    """``C0``..``C9`` as their hex colour; anything else unchanged."""
    if len(name) == 2 and name[0] == "C" and name[1].isdigit():
        return TAB10[int(name[1])]
    return name


def power_of_ten(exp: int) -> str:
    """``10`` with a Unicode superscript exponent."""
    return "10" + str(exp).translate(_SUPERSCRIPT)


def _num(v: float) -> str:
    """A coordinate with at most two decimals, no trailing zeros."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


class Scale:
    """Maps data values to pixels along one axis: ``lo`` to ``p0`` and ``hi`` to ``p1``."""

    log = False

    def __init__(self, lo: float, hi: float, p0: float, p1: float) -> None:
        if hi == lo:
            hi = lo + (abs(lo) or 1.0)
        self.lo, self.hi, self.p0, self.p1 = float(lo), float(hi), float(p0), float(p1)

    def _t(self, v):
        return v

    def px(self, v):
        """Pixel of ``v`` (a number or an array)."""
        t0, t1 = self._t(self.lo), self._t(self.hi)
        return self.p0 + (self._t(v) - t0) / (t1 - t0) * (self.p1 - self.p0)

    def ticks(self) -> list[tuple[float, str]]:
        """``(value, label)`` at 1, 2, 2.5 or 5 times a power of ten, about 5-8 of them."""
        lo, hi = min(self.lo, self.hi), max(self.lo, self.hi)
        raw = (hi - lo) / 6
        mag = 10.0 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        first = math.ceil(lo / step - 1e-9)
        out = []
        for i in range(first, int(math.floor(hi / step + 1e-9)) + 1):
            v = i * step
            out.append((v, f"{v:,.10g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.3g}"))
        return out


class LogScale(Scale):
    """A base-10 logarithmic scale whose ends are whole decades (ticks: every decade)."""

    log = True

    def __init__(self, lo: float, hi: float, p0: float, p1: float) -> None:
        lo, hi = max(float(lo), 1e-300), max(float(hi), 1e-300)
        e0 = math.floor(math.log10(lo) + 1e-9)
        e1 = math.ceil(math.log10(hi) - 1e-9)
        super().__init__(10.0 ** e0, 10.0 ** max(e1, e0 + 1), p0, p1)

    def _t(self, v):
        return np.log10(v) if isinstance(v, np.ndarray) else math.log10(v)

    def ticks(self) -> list[tuple[float, str]]:
        e0, e1 = round(math.log10(self.lo)), round(math.log10(self.hi))
        step = max(1, math.ceil((e1 - e0) / 12))
        return [(10.0 ** e, power_of_ten(e)) for e in range(e0, e1 + 1, step)]


@dataclass
class Svg:
    """An SVG document being drawn: ``width`` x ``height`` pixels; ``uid`` prefixes its ids
    (clip paths), so several figures can sit inline in one HTML page."""

    width: float
    height: float
    uid: str = "fig"
    parts: list[str] = field(default_factory=list)

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, s: object, size: float = 11, anchor: str = "start",
             rotate: float = 0.0, weight: str = "", fill: str = "#222",
             baseline: str = "") -> None:
        rot = f" transform='rotate({_num(rotate)} {_num(x)} {_num(y)})'" if rotate else ""
        extra = (f" font-weight='{weight}'" if weight else "") + \
            (f" dominant-baseline='{baseline}'" if baseline else "")
        self.add(f"<text x='{_num(x)}' y='{_num(y)}' font-size='{_num(size)}' "
                 f"text-anchor='{anchor}' fill='{fill}'{extra}{rot}>{esc(s)}</text>")

    def line(self, x0: float, y0: float, x1: float, y1: float, stroke: str = "#222",
             width: float = 1.0, dash: str = "-", opacity: float = 1.0) -> None:
        self.polyline([(x0, y0), (x1, y1)], stroke, width, dash, opacity)

    def polyline(self, pts: Iterable[tuple[float, float]], stroke: str = "#222",
                 width: float = 1.0, dash: str = "-", opacity: float = 1.0,
                 clip: bool = False) -> None:
        d = " ".join(f"{_num(x)},{_num(y)}" for x, y in pts)
        self.add(f"<polyline points='{d}' fill='none' stroke='{color(stroke)}' "
                 f"stroke-width='{_num(width)}'{_dash(dash)}{_opacity('stroke', opacity)}"
                 f"{self._clip(clip)}/>")

    def rect(self, x: float, y: float, w: float, h: float, fill: str = "none",
             stroke: str = "", opacity: float = 1.0) -> None:
        st = f" stroke='{color(stroke)}'" if stroke else ""
        self.add(f"<rect x='{_num(x)}' y='{_num(y)}' width='{_num(w)}' height='{_num(h)}' "
                 f"fill='{color(fill)}'{st}{_opacity('fill', opacity)}/>")

    def clip_box(self, x: float, y: float, w: float, h: float) -> None:
        """The rectangle that ``clip=True`` elements are clipped to (the plot box)."""
        self.add(f"<clipPath id='{self.uid}-clip'><rect x='{_num(x)}' y='{_num(y)}' "
                 f"width='{_num(w)}' height='{_num(h)}'/></clipPath>")

    def _clip(self, clip: bool) -> str:
        return f" clip-path='url(#{self.uid}-clip)'" if clip else ""

    def render(self) -> str:
        return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{_num(self.width)}' "
                f"height='{_num(self.height)}' viewBox='0 0 {_num(self.width)} "
                f"{_num(self.height)}' font-family='{FONT}'>"
                f"<rect width='100%' height='100%' fill='white'/>"
                + "\n".join(self.parts) + "</svg>")


def _dash(style: str) -> str:
    pattern = DASHES.get(style, style)
    return f" stroke-dasharray='{pattern}'" if pattern else ""


def _opacity(what: str, opacity: float) -> str:
    return f" {what}-opacity='{_num(opacity)}'" if opacity < 1 else ""


#: marker shapes: circle, triangles up/down, square, diamond (as matplotlib's o ^ v s D)
MARKERS = ("o", "^", "v", "s", "D")


def marker_shape(kind: str, r: float) -> str:
    """Path data of a marker of radius ``r`` relative to its centre, after ``M x,y``
    (``''`` for the circle ``o``)."""
    w = 0.866 * r   # half the base of a triangle of circumradius r
    shapes = {"^": f"m0,{_num(-r)}l{_num(w)},{_num(1.5 * r)}h{_num(-2 * w)}z",
              "v": f"m0,{_num(r)}l{_num(w)},{_num(-1.5 * r)}h{_num(-2 * w)}z",
              "s": f"m{_num(-0.8 * r)},{_num(-0.8 * r)}h{_num(1.6 * r)}v{_num(1.6 * r)}"
                   f"h{_num(-1.6 * r)}z",
              "D": f"m0,{_num(-r)}l{_num(r)},{_num(r)}l{_num(-r)},{_num(r)}"
                   f"l{_num(-r)},{_num(-r)}z"}
    return shapes.get(kind, "")


def markers(svg: Svg, xs: Sequence[float], ys: Sequence[float], kind: str = "o",
            r: float = 3.0, fill: str = "C0", opacity: float = 1.0, clip: bool = True) -> int:
    """Scatter markers at pixel positions as one group (identical positions, to 0.01 px,
    drawn once: they would cover each other); how many were drawn."""
    fmt = "{:.2f}".format
    seen = dict.fromkeys(zip(map(fmt, np.asarray(xs, dtype=float).tolist()),
                             map(fmt, np.asarray(ys, dtype=float).tolist()), strict=True))
    shape = marker_shape(kind, r)
    if not shape:
        body = "".join(f"<circle cx='{x}' cy='{y}' r='{_num(r)}'/>" for x, y in seen)
    else:
        body = "".join(f"<path d='M{x},{y}{shape}'/>" for x, y in seen)
    svg.add(f"<g fill='{color(fill)}'{_opacity('fill', opacity)}{svg._clip(clip)}>{body}</g>")
    return len(seen)


@dataclass
class Panel:
    """A plot box (``left``, ``top``, ``width``, ``height`` in pixels) with its scales."""

    svg: Svg
    left: float
    top: float
    width: float
    height: float
    x: Scale
    y: Scale

    @classmethod
    def make(cls, svg: Svg, box: tuple[float, float, float, float], xlim: tuple[float, float],
             ylim: tuple[float, float], xlog: bool = False, ylog: bool = False,
             ydown: bool = False) -> Panel:
        """``ydown``: the y axis grows downwards (``ylim[0]`` at the top)."""
        left, top, w, h = box
        xs = (LogScale if xlog else Scale)(*xlim, left, left + w)
        ys = (LogScale if ylog else Scale)(*ylim, *((top, top + h) if ydown else (top + h,
                                                                              top)))
        return cls(svg, left, top, w, h, xs, ys)

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def axes(self, xlabel: str = "", ylabel: str = "", title: str = "", grid: str = "xy",
             xticks: list[tuple[float, str]] | None = None,
             yticks: list[tuple[float, str]] | None = None, xrotate: float = 0.0,
             tick_size: float = 10) -> None:
        """Frame, ticks with labels, grid lines (``grid`` names the axes that get them),
        axis labels and a title."""
        s = self.svg
        xticks = self.x.ticks() if xticks is None else xticks
        yticks = self.y.ticks() if yticks is None else yticks
        for v, label in xticks:
            px = float(self.x.px(v))
            if "x" in grid:
                s.line(px, self.top, px, self.bottom, "#b0b0b0", 0.8, opacity=0.5)
            s.line(px, self.bottom, px, self.bottom + 4)
            if xrotate:
                s.text(px + 3, self.bottom + 14, label, tick_size, "end", -xrotate)
            else:
                s.text(px, self.bottom + 16, label, tick_size, "middle")
        for v, label in yticks:
            py = float(self.y.px(v))
            if "y" in grid:
                s.line(self.left, py, self.right, py, "#b0b0b0", 0.8, opacity=0.5)
            s.line(self.left - 4, py, self.left, py)
            s.text(self.left - 7, py + tick_size * 0.35, label, tick_size, "end")
        s.rect(self.left, self.top, self.width, self.height, stroke="#222")
        if xlabel:
            s.text(self.left + self.width / 2, self.bottom + (58 if xrotate else 36), xlabel,
                   11, "middle")
        if ylabel:
            x = self.left - 12 - tick_size * CHAR_WIDTH * max(
                (len(lb) for _, lb in yticks), default=2)
            s.text(x, self.top + self.height / 2, ylabel, 11, "middle", -90)
        if title:
            s.text(self.left + self.width / 2, self.top - 8, title, 12, "middle")

    def clip(self) -> None:
        self.svg.clip_box(self.left, self.top, self.width, self.height)

    def stacked_bars(self, positions: Sequence[float], stacks: Sequence[Sequence[float]],
                     colors: Sequence[str], horizontal: bool = False,
                     width: float = 0.8) -> list[list[tuple[float, float, float, float]]]:
        """Bars at ``positions`` (data units along the category axis, ``width`` wide), one
        layer per entry of ``stacks`` (its values, one per position) on top of the layers
        before it; returns each layer's ``(x, y, w, h)`` rectangles in pixels."""
        base = np.zeros(len(positions))
        pos = np.asarray(positions, dtype=float)
        drawn = []
        for vals, col in zip(stacks, colors, strict=True):
            vals = np.asarray(vals, dtype=float)
            lo, hi = base, base + vals
            rects = []
            if horizontal:
                a, b = self.y.px(pos + width / 2), self.y.px(pos - width / 2)
                x0, x1 = self.x.px(lo), self.x.px(hi)
                rects = list(zip(x0, a, x1 - x0, b - a, strict=True))
            else:
                a, b = self.x.px(pos - width / 2), self.x.px(pos + width / 2)
                y0, y1 = self.y.px(hi), self.y.px(lo)
                rects = list(zip(a, y0, b - a, y1 - y0, strict=True))
            body = "".join(f"<rect x='{_num(x)}' y='{_num(y)}' width='{_num(w)}' "
                           f"height='{_num(h)}'/>" for x, y, w, h in rects if w > 0 and h > 0)
            self.svg.add(f"<g fill='{color(col)}'>{body}</g>")
            drawn.append([tuple(map(float, r)) for r in rects])
            base = hi
        return drawn


def legend(svg: Svg, entries: Sequence[tuple[str, dict, str]], x: float, y: float,
           anchor: str = "top-left", ncol: int = 1, size: float = 9.0) -> tuple[float, ...]:
    """A framed legend. Each entry is ``(kind, style, label)``: ``line`` (style: ``stroke``,
    ``width``, ``dash``), ``marker`` (``shape``, ``fill``) or ``box`` (``fill``). ``anchor``
    says which corner of the legend is at (x, y). Returns the frame ``(x, y, w, h)``."""
    if not entries:
        return (x, y, 0.0, 0.0)
    rows = math.ceil(len(entries) / ncol)
    cols = [entries[i * rows:(i + 1) * rows] for i in range(ncol)]
    col_w = [40 + CHAR_WIDTH * size * max(len(lb) for _, _, lb in c) for c in cols if c]
    w, h = sum(col_w) + 8, rows * (size + 5) + 8
    x0 = x - w if anchor.endswith("right") else x
    y0 = y - h if anchor.startswith("bottom") else y
    svg.rect(x0, y0, w, h, fill="white", stroke="#ccc", opacity=0.85)
    cx = x0 + 6
    for c, cw in zip(cols, col_w, strict=False):
        for i, (kind, style, label) in enumerate(c):
            cy = y0 + 4 + (i + 0.5) * (size + 5)
            if kind == "line":
                svg.line(cx, cy, cx + 20, cy, style.get("stroke", "#222"),
                         style.get("width", 1.2), style.get("dash", "-"))
            elif kind == "marker":
                markers(svg, [cx + 10], [cy], style.get("shape", "o"), 3.5,
                        style.get("fill", "C0"), clip=False)
            else:
                svg.rect(cx + 3, cy - 4, 14, 8, fill=style.get("fill", "C0"))
            svg.text(cx + 25, cy + size * 0.35, label, size)
        cx += cw
    return (x0, y0, w, h)
