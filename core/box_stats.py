"""Box-plot statistics, computed once on the server instead of in the browser.

Why: the recording page's shuffled baseline has thousands of values per chart (1,000 per layer
for the bundled store); sending them all made the browser compute the quartiles and carried a
layer label per value. Five numbers per box draw the same box as Plotly drew from the values
with ``boxpoints=False``: quartiles by linear interpolation between order statistics (numpy's
default, Plotly's ``quartilemethod="linear"``) and, as no point is drawn, whiskers from the
smallest to the largest value (so no extreme value disappears from the chart).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoxStats:
    q1: float
    median: float
    q3: float
    minimum: float
    maximum: float
    n: int


def box_stats(values: np.ndarray) -> BoxStats:
    """The box of the finite ``values`` (NaN and inf are left out); ``ValueError`` when none."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        raise ValueError("no finite values to summarise")
    q1, median, q3 = np.quantile(data, [0.25, 0.5, 0.75])
    return BoxStats(float(q1), float(median), float(q3), float(data.min()), float(data.max()),
                    int(data.size))
