"""The Items page's figures: a speech item's waveform, drawn normalised when it is quiet."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.item_audio import display_gain
from dashboard.charts.recording import waveform_figure

#: below this gain a waveform is drawn as it is
NORMALISE_ABOVE = 1.5


def item_waveform_figure(waveform: np.ndarray, sampling_rate: int, title: str) -> go.Figure:
    """The waveform at full height: a quiet recording (peak well under full scale) is drawn
    scaled up, and the title says by how much, so its shape is visible; playback is unchanged."""
    gain = display_gain(waveform)
    if gain < NORMALISE_ABOVE:
        return waveform_figure(waveform, sampling_rate, title=title)
    figure = waveform_figure(np.asarray(waveform, dtype=np.float32) * gain, sampling_rate,
                             title=f"{title} · drawn ×{gain:.1f} (quiet)")
    return figure.update_yaxes(title=dict(text="amplitude (normalised)"))
