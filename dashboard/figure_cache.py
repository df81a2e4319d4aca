"""Figures of the Layer curves page, kept per process and keyed on what they depend on.

The page's rerun was mostly plotly building and validating the same figures again (bench_load:
0.25-0.5 s a rerun). Each function here reads through ``dashboard.state``'s cached queries and
draws with a pure builder of ``dashboard.charts``; the figure is kept in ``st.cache_resource``
(not ``st.cache_data``: unpickling a plotly Figure validates it all over again), keyed on the
store (path + mtime, so a republished store is a new key) and every widget value the figure
reads. Figures are never mutated after building (``st.plotly_chart`` copies them), so sharing
one object between sessions is safe.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import state
from dashboard.charts.layer_curves import layer_curves_figure, pairing_curves_figure
from dashboard.charts.level_curves import level_means_figure, level_panels_figure

#: how the same-language curves group the languages -> what the page calls it
GROUPINGS: dict[str, str] = {
    "levels": "small multiples by resource level",
    "means": "level means (+ languages on demand)",
    "all": "every language on one chart",
}


@st.cache_resource(show_spinner=False, max_entries=64)
def same_language_curves(ref: state.StoreRef, run_id: str, metric: str, langs: tuple[str, ...],
                         view: str, grouping: str, components: tuple[str, str] | None,
                         layer_names: tuple[str, ...], *, show_ci: bool, show_length: bool,
                         x_axis: str, shown_langs: tuple[str, ...] = ()) -> go.Figure:
    """Same-language text-vs-speech curves of one component pair, grouped as ``grouping`` says
    (``GROUPINGS``); ``shown_langs``: the languages drawn beside the level means."""
    rows = state.metrics(ref, run_id, metric=metric, pairing="text-speech", langs=langs,
                         components=components, resamples=True)
    languages = state.languages(ref)
    options = dict(metric=metric, view=view, show_ci=show_ci, x_axis=x_axis,
                   layer_names=layer_names, langs=langs, show_length=show_length)
    if grouping == "levels":
        return level_panels_figure(rows, languages, **options)
    if grouping == "means":
        return level_means_figure(rows, languages, shown_langs=shown_langs, **options)
    return layer_curves_figure(rows, languages, **options)


@st.cache_resource(show_spinner=False, max_entries=64)
def family_curves(ref: state.StoreRef, run_id: str, metric: str, langs: tuple[str, ...],
                  view: str, pairings: tuple[str, ...], layer_names: tuple[str, ...], *,
                  show_ci: bool, show_length: bool, x_axis: str) -> go.Figure:
    """The comparison families' means over language pairs (``pairing_curves_figure``)."""
    rows = state.metrics(ref, run_id, metric=metric, langs=langs, resamples=True)
    return pairing_curves_figure(rows[rows["pairing"].isin(pairings)], metric=metric, view=view,
                                 show_ci=show_ci, x_axis=x_axis, layer_names=layer_names,
                                 show_length=show_length)
