"""Tukey box-plot statistics, computed once on the server instead of in the browser.

Why: the recording page's shuffled baseline has thousands of values per chart (1,000 per layer
for the bundled store); sending them all made the browser compute the quartiles and carried a
layer label per value. Five numbers per box draw the same box. Quartiles by linear
interpolation between order statistics (numpy's default, Plotly's ``quartilemethod="linear"``);
whiskers to the most extreme values within 1.5 IQR of the box (Tukey), never inside the box,
as Plotly draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: whiskers reach the most extreme value within this many IQRs of the box
WHISKER_IQR = 1.5


@dataclass(frozen=True)
class BoxStats:
    q1: float
    median: float
    q3: float
    lower_fence: float
    upper_fence: float
    n: int


def box_stats(values: np.ndarray) -> BoxStats:
    """The box of the finite ``values`` (NaN and inf are left out); ``ValueError`` when none."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        raise ValueError("no finite values to summarise")
    q1, median, q3 = np.quantile(data, [0.25, 0.5, 0.75])
    reach = WHISKER_IQR * (q3 - q1)
    inside = data[(data >= q1 - reach) & (data <= q3 + reach)]  # never empty: holds the median
    # an interpolated quartile can lie beyond every value inside the reach: the whisker then
    # ends at the box, as Plotly clamps it
    return BoxStats(float(q1), float(median), float(q3), float(min(q1, inside.min())),
                    float(max(q3, inside.max())), int(data.size))
