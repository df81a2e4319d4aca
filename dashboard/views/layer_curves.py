"""Similarity over layers: per-language text-vs-speech, and the comparison families side by side."""

import streamlit as st

from dashboard import downloads, state, url_state
from dashboard.charts.common import LENGTH_BASELINE_NAME, RESIDUALISED_NOTE
from dashboard.charts.layer_curves import layer_curves_figure, pairing_curves_figure
from dashboard.charts.transforms import PAIRINGS, component_pairs

st.title("Layer curves")
st.caption("Does the model bring the text and the speech of a sentence together as it goes deeper?")

ref = state.store_ref()
sel = state.sidebar(ref)
left, middle, right = st.columns(3)
controls = sel.view != "residualised"  # the store has no CI and no baselines for residualised values
url_state.seed("show_ci", [True, False], True)
url_state.seed("show_length", [True, False], True)
url_state.seed("x_axis", ["layer", "depth"], "layer")
show_ci = controls and left.toggle("Show 95% confidence intervals", key="show_ci")
show_length = controls and middle.toggle(
    "Show the length-only baseline", key="show_length",
    help=f"Dash-dot: the {LENGTH_BASELINE_NAME}: the metric between features built from each "
         "side's sentence length alone. A value at or below it says no more than length does.")
if not controls:
    left.caption(RESIDUALISED_NOTE)
x_axis = right.radio("x axis", ["layer", "depth"], horizontal=True, key="x_axis",
                     format_func={"layer": "layer names", "depth": "relative depth"}.get)

rows = state.metrics(ref, sel.run_id, metric=sel.metric, langs=sel.langs, resamples=True)
available = {pairing: state.availability(ref, sel.run_id, sel.model, sel.metric, pairing)
             for pairing in PAIRINGS}

text_speech = available["text-speech"]
cross_modal = rows[rows["pairing"] == "text-speech"]
pairs = component_pairs(cross_modal)
if len(pairs) > 1:  # e.g. Seamless: encoders, and the text decoder fed text or speech
    url_state.seed("curves_components", pairs, pairs[0])
    chosen = st.selectbox("Text-speech component pair", pairs, key="curves_components",
                          format_func=lambda p: f"{p[0]} vs {p[1]}")
    cross_modal = cross_modal[(cross_modal["component_a"] == chosen[0])
                              & (cross_modal["component_b"] == chosen[1])]
    names = state.component_layer_names(state.components(ref, sel.run_id), chosen[0])
else:
    names = state.pairing_layer_names(ref, sel.run_id, sel.metric, "text-speech")

if text_speech.drawable:
    downloads.chart(layer_curves_figure(cross_modal, state.languages(ref), metric=sel.metric,
                                        view=sel.view, show_ci=show_ci, x_axis=x_axis,
                                        layer_names=names, langs=sel.langs,
                                        show_length=show_length),
                    key="layer_curves")
    st.caption("One line per language, one colour family per resource level (blue: high, orange: "
               "medium, pink: low)"
               + ("; whiskers are 95% bootstrap CIs" if show_ci else "")
               + (". Dashed grey: the shuffled-pairs baseline (mean ± 1.96 sd)" if controls else "")
               + (". Black dash-dot: the length-only baseline (what sentence length alone "
                  "predicts), mean over languages" if show_length else "")
               + ". Click a legend entry to hide a language.")
    if text_speech.message:
        with st.expander("Component pairs left out of this view", icon=":material/info:"):
            st.markdown(text_speech.message)
else:
    st.subheader("Text vs speech of the same sentence, per language", divider="gray")
    st.info(text_speech.message, icon=":material/info:")
state.speech_notice(ref, [sel.run_id], sel.langs)

st.subheader("Comparison families", divider="gray")
drawable = [p for p, a in available.items() if a.drawable]
# one note per distinct reason (a text-only model gives the same one for both speech pairings)
notes = list(dict.fromkeys(a.message for p, a in available.items() if not a.drawable or a.message))
if drawable:
    family_names = state.pairing_layer_names(ref, sel.run_id, sel.metric, "text-speech") or \
        state.pairing_layer_names(ref, sel.run_id, sel.metric, drawable[0])
    downloads.chart(pairing_curves_figure(rows[rows["pairing"].isin(drawable)],
                                          metric=sel.metric, view=sel.view, show_ci=show_ci,
                                          x_axis=x_axis, layer_names=family_names,
                                          show_length=show_length),
                    key="pairing_curves")
    st.caption("Means over language pairs. Speech-speech below text-text = speech differs more "
               "across languages than text (finding 3). Same-language text-speech below "
               "cross-lingual text-text = the modality gap is larger than the language gap "
               "(finding 4). Purple: the same sentence and language in a second voice (where a "
               "language has one): how far a change of voice alone moves speech similarity."
               + (" Bands: 95% CI of the mean over language pairs, bootstrapped jointly over the "
                  "same sentence resamples (pairs share languages and sentences, so they are not "
                  "independent)." if show_ci else "")
               + (" Dashed: each family's shuffled baseline." if controls else "")
               + (" Dash-dot: each family's length-only baseline (what sentence length alone "
                  "predicts)." if show_length else ""))
    missing = [p for p in PAIRINGS if p not in drawable]
    if notes:
        label = (f"Not drawn: {', '.join(missing)}" if missing
                 else "Component pairs left out of this view")
        with st.expander(label, expanded=bool(missing), icon=":material/info:"):
            for note in notes:
                st.markdown(note)
else:
    for note in notes:
        st.info(note, icon=":material/info:")
