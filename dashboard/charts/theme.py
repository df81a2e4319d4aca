"""How every dashboard chart looks: the colour-blind-safe palettes, the font, the plotly template.

Colours are facts the pages share (a resource level, a modality, a comparison family or a language
has one colour on every chart), so they are defined here once; which language gets which colour is
``dashboard.charts.languages``' job.
"""

from __future__ import annotations

import plotly.graph_objects as go

# Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
#: one colour family (base hue) per resource level
LEVEL_COLOURS: dict[str, str] = {
    "high": OKABE_ITO["blue"],
    "medium": OKABE_ITO["orange"],
    "low": OKABE_ITO["purple"],
    "unknown": "#7F7F7F",
}
MODALITY_COLOURS: dict[str, str] = {"text": OKABE_ITO["blue"], "speech": OKABE_ITO["vermillion"]}
MODALITY_SYMBOLS: dict[str, str] = {"text": "circle", "speech": "diamond"}
#: categorical palette for many languages: Okabe-Ito (no yellow/black) then Tol's "safe" set
CATEGORICAL: tuple[str, ...] = (
    OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["green"], OKABE_ITO["vermillion"],
    OKABE_ITO["purple"], OKABE_ITO["sky"], "#332288", "#117733", "#999933", "#882255",
    "#44AA99", "#661100", "#DDCC77", "#AA4499", "#888888",
)
#: one colour per language, the same on every chart that colours by language (``language_palette``:
#: the Projection page, the recording page's neighbour charts and maps; the Layer curves colour
#: languages by resource level, ``language_colours``): the categorical colours above without the two
#: the recording page keeps for the clip (Okabe-Ito blue and vermillion), then seven from Kelly's
#: (1965) list of colours of maximum contrast (black as Okabe-Ito's), each the one farthest in
#: CIELAB from all before it and from the clip's two, every colour faded on white as the maps'
#: stored points are. 20 distinct colours (the bundled store's languages), repeated beyond.
LANGUAGE_PALETTE: tuple[str, ...] = (
    *(c for c in CATEGORICAL if c not in (OKABE_ITO["blue"], OKABE_ITO["vermillion"])),
    "#8DB600", "#000000", "#F99379", "#BE0032", "#654522", "#DCD300", "#604E97",
)
BASELINE_COLOUR = "#555555"
#: the length-only baseline where it is not drawn in a series' own colour
LENGTH_BASELINE_COLOUR = OKABE_ITO["black"]
#: the comparison families of the layer curves
FAMILY_COLOURS: dict[str, str] = {
    "text-text (cross-lingual)": OKABE_ITO["blue"],
    "speech-speech (cross-lingual)": OKABE_ITO["orange"],
    "text-speech (cross-lingual)": OKABE_ITO["green"],
    "text-speech (same language)": OKABE_ITO["vermillion"],
    "speech-speech (same language, another voice)": OKABE_ITO["purple"],
}
SERIES_COLOURS: dict[str, str] = {
    **FAMILY_COLOURS,
    # finding details
    "text-text": OKABE_ITO["blue"], "speech-speech": OKABE_ITO["orange"],
    "speech, same language, another voice": OKABE_ITO["purple"],
    "text-speech, same language": OKABE_ITO["vermillion"],
    "text-text, cross-lingual": OKABE_ITO["blue"],
}
FONT = dict(family="Inter, 'Source Sans Pro', Arial, sans-serif", size=13)
#: trace types the dashboard draws (TEMPLATE keeps plotly_white's defaults for these only)
TRACE_TYPES = ("scatter", "scattergl", "box", "heatmap", "bar")


def _template() -> go.layout.Template:
    """plotly_white, with its per-trace defaults kept for ``TRACE_TYPES`` only.

    A figure copies its template when the template is set: plotly_white's defaults for two dozen
    trace types (maps, 3-D, polar, ...) made that copy ~50 ms per figure, a tenth of the
    recording page's drawing time; the layout and the defaults of what is drawn are unchanged
    (tested: the same JSON for every trace type drawn)."""
    import plotly.io as pio

    white = pio.templates["plotly_white"]
    return go.layout.Template(layout=white.layout,
                              data={kind: white.data[kind] for kind in TRACE_TYPES})


TEMPLATE = _template()
