"""dashboard.charts.point_raster: the stored points drawn as an image in data coordinates."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from dashboard.charts import point_raster as pr

BLUE = (0, 114, 178, 255)


def _centroid_in_data(image: Image.Image, bounds: pr.Bounds) -> tuple[float, float]:
    """Where the non-white pixels' centre lies, in data units (pixel centres, y up)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    ink = 255 * 3 - pixels.sum(axis=2)  # how far from white
    rows, cols = np.indices(ink.shape)
    height, width = ink.shape
    col = (cols * ink).sum() / ink.sum() + 0.5
    row = (rows * ink).sum() / ink.sum() + 0.5
    return (bounds.x0 + col / width * bounds.width, bounds.y1 - row / height * bounds.height)


@pytest.mark.parametrize("point", [(0.3, 0.7), (-4.0, 2.5), (9.9, -3.1)])
def test_a_point_is_drawn_where_its_data_coordinates_fall(point):
    """Placed by (x0, y1, width, height) as the chart places the image, the disc's centre is at
    the point: the image and the clip's vector markers agree."""
    bounds = pr.Bounds(-5.0, 10.0, -4.0, 3.0)
    image = pr.rasterise(np.array([point]), np.array([BLUE], np.uint8), bounds)
    x, y = _centroid_in_data(image, bounds)
    pixel = bounds.width / image.size[0]
    assert abs(x - point[0]) < pixel and abs(y - point[1]) < pixel


def test_image_keeps_the_extents_aspect_so_discs_stay_round():
    bounds = pr.Bounds(0.0, 8.0, 0.0, 2.0)
    assert pr.image_size(bounds, 480) == (480, 120)
    assert pr.image_size(pr.Bounds(0.0, 2.0, 0.0, 8.0), 480) == (120, 480)
    line = pr.padded_bounds(np.array([[0.0, 5.0], [100.0, 5.0]]))  # every point on one line
    assert line.width == pytest.approx(pr.MAX_ASPECT * line.height)
    assert (line.y0 + line.y1) / 2 == pytest.approx(5.0)
    assert pr.image_size(line, 480) == (480, 120)
    image = pr.rasterise(np.array([[4.0, 1.0]]), np.array([BLUE], np.uint8), bounds)
    ink = np.asarray(image.convert("L")) < 250
    rows, cols = np.nonzero(ink)
    assert abs((rows.max() - rows.min()) - (cols.max() - cols.min())) <= 1  # round, not stretched


def test_padded_bounds_hold_every_point_with_a_margin():
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(300, 2)) * [5.0, 0.5] + [10.0, -2.0]
    bounds = pr.padded_bounds(xy)
    assert bounds.x0 < xy[:, 0].min() and bounds.x1 > xy[:, 0].max()
    assert bounds.y0 < xy[:, 1].min() and bounds.y1 > xy[:, 1].max()
    margin = pr.PAD_FRACTION * (xy[:, 0].max() - xy[:, 0].min())
    assert bounds.x0 == pytest.approx(xy[:, 0].min() - margin)
    assert bounds.x1 == pytest.approx(xy[:, 0].max() + margin)
    assert bounds.y1 - xy[:, 1].max() >= margin and xy[:, 1].min() - bounds.y0 >= margin
    assert bounds.width <= pr.MAX_ASPECT * bounds.height + 1e-9  # 10:1 data, widened to 4:1
    same = pr.padded_bounds(np.array([[2.0, 3.0], [2.0, 3.0]]))
    assert (same.x0, same.x1, same.y0, same.y1) == (1.0, 3.0, 2.0, 4.0)
    assert pr.padded_bounds(np.array([[np.nan, 1.0]])) == pr.Bounds(-1.0, 1.0, -1.0, 1.0)


def test_later_points_are_blended_over_earlier_ones_and_order_matters():
    bounds = pr.Bounds(0.0, 1.0, 0.0, 1.0)
    xy = np.array([[0.5, 0.5], [0.5, 0.5]])
    red, blue = (255, 0, 0, 128), (0, 0, 255, 128)
    first = pr.rasterise(xy, np.array([red, blue], np.uint8), bounds)
    second = pr.rasterise(xy, np.array([blue, red], np.uint8), bounds)
    centre = (first.size[0] // 2, first.size[1] // 2)
    r, _g, b = first.getpixel(centre)
    assert b > r > 0  # blue on top, red showing through
    r2, _g2, b2 = second.getpixel(centre)
    assert r2 > b2 > 0
    single = pr.rasterise(xy[:1], np.array([blue], np.uint8), bounds).getpixel(centre)
    assert single[0] == single[1] > 100 and single[2] == 255  # half-transparent over white


def test_same_points_give_the_same_bytes_and_bad_input_is_refused():
    rng = np.random.default_rng(2)
    xy = rng.random((500, 2))
    rgba = np.tile(np.array([[0, 114, 178, 140]], np.uint8), (500, 1))
    bounds = pr.padded_bounds(xy)
    uris = {pr.png_data_uri(pr.rasterise(xy, rgba, bounds)) for _ in range(2)}
    assert len(uris) == 1
    (uri,) = uris
    assert uri.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert decoded.size == pr.image_size(bounds) and decoded.mode == "P"  # palette PNG
    with_nan = np.vstack([xy, [[np.nan, 0.5]]])
    assert pr.png_data_uri(pr.rasterise(with_nan, np.vstack([rgba, rgba[:1]]), bounds)) == uri
    with pytest.raises(ValueError, match="500 points but 499 colours"):
        pr.rasterise(xy, rgba[:-1], bounds)
    assert pr.hex_rgba("#0072B2", 0.55) == (0, 114, 178, 140)
    with pytest.raises(ValueError, match="#rrggbb"):
        pr.hex_rgba("blue", 1.0)
