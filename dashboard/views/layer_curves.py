"""Similarity over layers: per-language text-vs-speech, and the comparison families side by side."""

import streamlit as st

from dashboard import charts, state

st.title("Layer curves")
st.caption("Does the model bring the text and the speech of a sentence together as it goes deeper?")

ref = state.store_ref()
sel = state.sidebar(ref)
left, right = st.columns(2)
show_ci = left.toggle("Show 95% confidence intervals", value=True, key="show_ci")
x_axis = right.radio("x axis", ["layer", "depth"], horizontal=True, key="x_axis",
                     format_func={"layer": "layer names", "depth": "relative depth"}.get)

rows = state.metrics(ref, sel.run_id, metric=sel.metric, langs=sel.langs)
layer_names = state.pairing_layer_names(ref, sel.run_id, sel.metric, "text-speech")

st.plotly_chart(charts.layer_curves_figure(rows, state.languages(ref), metric=sel.metric,
                                           view=sel.view, show_ci=show_ci, x_axis=x_axis,
                                           layer_names=layer_names, langs=sel.langs),
                key="layer_curves")
st.caption("One line per language, one colour family per resource level (blue: high, orange: "
           "medium, pink: low); whiskers are 95% bootstrap CIs. Dashed grey: the shuffled-pairs "
           "baseline (mean ± 1.96 sd). Click a legend entry to hide a language.")

st.plotly_chart(charts.pairing_curves_figure(rows, metric=sel.metric, view=sel.view,
                                             show_ci=show_ci, x_axis=x_axis,
                                             layer_names=layer_names),
                key="pairing_curves")
st.caption("Means over language pairs. Speech-speech below text-text = speech differs more across "
           "languages than text (finding 3). Same-language text-speech below cross-lingual "
           "text-text = the modality gap is larger than the language gap (finding 4). Bands: 95% "
           "CI of the mean over language pairs; dashed: each family's shuffled baseline.")
