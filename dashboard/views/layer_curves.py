"""Similarity over layers: same-language text-vs-speech by resource level, and the comparison
families side by side."""

import streamlit as st

from core.store.tables import PAIRINGS
from dashboard import downloads, figure_cache, sidebar, state, url_state
from dashboard.charts.common import LENGTH_BASELINE_NAME, RESIDUALISED_NOTE
from dashboard.charts.languages import language_names
from dashboard.charts.transforms import component_pairs

st.title("Layer curves")
st.caption("Does the model bring the text and the speech of a sentence together as it goes deeper?")

ref = state.store_ref()
sel = sidebar.sidebar(ref)
# ---- the page's widgets, in one place
left, middle, right = st.columns(3)
controls = sel.view != "residualised"  # the store has no CI and no baselines for residualised values
url_state.seed("show_ci", [True, False], True)
url_state.seed("show_length", [True, False], True)
url_state.seed("x_axis", ["layer", "depth"], "layer")
url_state.seed("curves_grouping", list(figure_cache.GROUPINGS), list(figure_cache.GROUPINGS)[0])
show_ci = controls and left.toggle("Show 95% confidence intervals", key="show_ci")
show_length = controls and middle.toggle(
    "Show the length-only baseline", key="show_length",
    help=f"Dash-dot: the {LENGTH_BASELINE_NAME}: the metric between features built from each "
         "side's sentence length alone. A value at or below it says no more than length does.")
if not controls:
    left.caption(RESIDUALISED_NOTE)
x_axis = right.radio("x axis", ["layer", "depth"], horizontal=True, key="x_axis",
                     format_func={"layer": "layer names", "depth": "relative depth"}.get)
grouping = st.radio("Languages", list(figure_cache.GROUPINGS), horizontal=True,
                    key="curves_grouping", format_func=figure_cache.GROUPINGS.get,
                    help="Twenty language lines on one chart hide each other: read them by "
                         "resource level (one panel each), or as level means with the "
                         "languages you pick.")
shown_langs: list[str] = []
if grouping == "means":
    language_names_ = language_names(state.languages(ref))
    url_state.seed("curves_shown_langs", list(sel.langs), [], multi=True)
    shown_langs = st.multiselect("Also draw these languages", list(sel.langs),
                                 key="curves_shown_langs", placeholder="Pick languages",
                                 format_func=lambda lang: language_names_.get(lang, lang))

available = {pairing: state.availability(ref, sel.run_id, sel.model, sel.metric, pairing)
             for pairing in PAIRINGS}
text_speech = available["text-speech"]
pairs = component_pairs(state.metric_layers(ref, sel.run_id, sel.metric, "text-speech"))
chosen = None
if len(pairs) > 1:  # e.g. Seamless: encoders, and the text decoder fed text or speech
    url_state.seed("curves_components", pairs, pairs[0])
    chosen = st.selectbox("Text-speech component pair", pairs, key="curves_components",
                          format_func=lambda p: f"{p[0]} vs {p[1]}")
    names = state.component_layer_names(state.components(ref, sel.run_id), chosen[0])
else:
    names = state.pairing_layer_names(ref, sel.run_id, sel.metric, "text-speech")

if text_speech.drawable:
    downloads.chart(figure_cache.same_language_curves(
        ref, sel.run_id, sel.metric, sel.langs, sel.view, grouping,
        tuple(chosen) if chosen else None, tuple(names), show_ci=show_ci,
        show_length=show_length, x_axis=x_axis, shown_langs=tuple(shown_langs)),
        key="layer_curves")
    grouped = {"levels": "One panel per resource level, on one shared y axis: thin lines are its "
                         "languages, the thick line their mean"
                         + (" with its 95% band (bootstrapped jointly over the languages' shared "
                            "sentence resamples)" if show_ci else ""),
               "means": "Thick lines: the mean over each resource level's languages"
                        + (" with its 95% band (bootstrapped jointly over the languages' shared "
                           "sentence resamples)" if show_ci else "")
                        + "; thin lines: the languages picked above",
               "all": "One line per language, one colour family per resource level (blue: high, "
                      "orange: medium, pink: low)"}[grouping]
    st.caption(grouped
               + ("; whiskers are each language's 95% bootstrap CI" if show_ci
                  and grouping == "all" else "")
               + ("; each language's own 95% CI is in its hover" if controls
                  and grouping != "all" else "")
               + (". Dashed grey: the shuffled-pairs baseline (mean ± 1.96 sd)" if controls else "")
               + (". Black dash-dot: the length-only baseline (what sentence length alone "
                  "predicts), mean over languages" if show_length else "")
               + ". Click a legend entry to hide a line.")
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
    downloads.chart(figure_cache.family_curves(
        ref, sel.run_id, sel.metric, sel.langs, sel.view, tuple(drawable), tuple(family_names),
        show_ci=show_ci, show_length=show_length, x_axis=x_axis), key="pairing_curves")
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
