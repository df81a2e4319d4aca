"""Scatter points drawn into a PNG image, for a chart's background layer (pure; no streamlit).

Why: the recording page's maps show thousands of stored points in every panel (about 4,000 per
layer for the bundled store, 28,000 per figure). As Plotly WebGL traces they were most of the
browser's work on that page: in headless Chromium without a GPU each map figure took 1.2-1.5 s
to draw, redrawn when the page's width settled, and on a machine whose cores the browser shares
with the server this delayed every chart after it. The stored points need no hover there (the
clip's ringed neighbours carry the labels; the Projection page names every point), so they are
drawn once per run, server-side, as an image placed in data coordinates: zooming enlarges the
image, the clip's markers stay vector. Drawing is deterministic: points in the given order, each
a disc blended over the earlier ones, supersampled then reduced (antialiased edges), so the same
points give the same bytes.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

#: the image's longer side in pixels: about twice a panel's size on screen (sharp on HiDPI)
LONG_SIDE_PX = 480
#: the extent is widened so that neither side is more than this many times the other (a map
#: squeezed to a line keeps a visible panel, and its image round discs)
MAX_ASPECT = 4.0
#: drawn this many times larger, then reduced: antialiased discs
SUPERSAMPLE = 3
#: a disc's diameter as a fraction of the image's longer side
DISC_FRACTION = 0.025
#: PNG palette size: 256 colours keep the blends and cut the bytes sent by about 2.5x
PALETTE_COLOURS = 256
#: margin around the points' extent, as a fraction of the larger span
PAD_FRACTION = 0.04


@dataclass(frozen=True)
class Bounds:
    """The data extent an image covers: x from ``x0`` to ``x1``, y from ``y0`` (bottom) to
    ``y1`` (top)."""
    x0: float
    x1: float
    y0: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def padded_bounds(xy: np.ndarray, pad_fraction: float = PAD_FRACTION,
                  max_aspect: float = MAX_ASPECT) -> Bounds:
    """The points' extent with a margin of ``pad_fraction`` of the larger span on every side
    (a unit margin when all points coincide), so discs at the edge are not cut; the shorter
    span is then widened about its centre to at least ``1 / max_aspect`` of the longer one."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    finite = xy[np.isfinite(xy).all(axis=1)]
    if finite.size == 0:
        return Bounds(-1.0, 1.0, -1.0, 1.0)
    low, high = finite.min(axis=0), finite.max(axis=0)
    span = float(max(high - low))
    pad = pad_fraction * span if span > 0 else 1.0
    low, high = low - pad, high + pad
    centre, half = (low + high) / 2, (high - low) / 2
    half = np.maximum(half, half.max() / max_aspect)
    return Bounds(float(centre[0] - half[0]), float(centre[0] + half[0]),
                  float(centre[1] - half[1]), float(centre[1] + half[1]))


def image_size(bounds: Bounds, long_side: int = LONG_SIDE_PX) -> tuple[int, int]:
    """(width, height) in pixels with the extent's aspect ratio: one data unit is as many pixels
    along x as along y, so discs stay round when the chart keeps the axes' scales equal."""
    aspect = bounds.width / bounds.height
    if aspect >= 1:
        return long_side, max(1, round(long_side / aspect))
    return max(1, round(long_side * aspect)), long_side


def rasterise(xy: np.ndarray, rgba: np.ndarray, bounds: Bounds, *,
              long_side: int = LONG_SIDE_PX, disc_fraction: float = DISC_FRACTION,
              supersample: int = SUPERSAMPLE) -> Image.Image:
    """An RGB image on white of the points ``xy`` (n x 2, data units) as discs of colour
    ``rgba`` (n x 4 uint8: alpha blends each disc over what is drawn before it), covering
    ``bounds`` (x to the right, y up). Points with a non-finite coordinate are skipped."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    rgba = np.asarray(rgba, dtype=np.uint8).reshape(-1, 4)
    if len(xy) != len(rgba):
        raise ValueError(f"{len(xy)} points but {len(rgba)} colours")
    width, height = image_size(bounds, long_side)
    big_w, big_h = width * supersample, height * supersample
    image = Image.new("RGB", (big_w, big_h), "white")
    draw = ImageDraw.Draw(image, "RGBA")  # RGBA ink on an RGB image: blended, not replaced
    radius = disc_fraction * max(big_w, big_h) / 2
    columns = (xy[:, 0] - bounds.x0) / bounds.width * big_w
    rows = (bounds.y1 - xy[:, 1]) / bounds.height * big_h
    keep = np.isfinite(columns) & np.isfinite(rows)
    for column, row, colour in zip(columns[keep].tolist(), rows[keep].tolist(),
                                   map(tuple, rgba[keep].tolist()), strict=True):
        draw.ellipse((column - radius, row - radius, column + radius, row + radius), fill=colour)
    return image.resize((width, height), Image.Resampling.BOX)


def png_data_uri(image: Image.Image, colours: int | None = PALETTE_COLOURS) -> str:
    """``image`` as a ``data:image/png;base64,...`` URI (what a Plotly layout image reads), its
    colours reduced to a palette of ``colours`` (median cut, deterministic; None: kept)."""
    buffer = io.BytesIO()
    (image.quantize(colours) if colours else image).save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def hex_rgba(colour: str, alpha: float) -> tuple[int, int, int, int]:
    """``"#rrggbb"`` with opacity ``alpha`` (0-1) as an RGBA tuple of 0-255 integers."""
    value = colour.lstrip("#")
    if len(value) != 6:
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    red, green, blue = (int(value[i:i + 2], 16) for i in (0, 2, 4))
    return red, green, blue, round(255 * alpha)
