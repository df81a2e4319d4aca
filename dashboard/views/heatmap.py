"""Language x language heatmap of one pairing, metric and layer."""

import streamlit as st

from dashboard import downloads, item_links, state, url_state
from dashboard.charts.common import LENGTH_BASELINE_NAME, RESIDUALISED_NOTE
from dashboard.charts.heatmap import baseline_summary, heatmap_figure
from dashboard.charts.languages import language_names, language_order

st.title("Heatmap")
st.caption("How similar two languages' representations of the same sentences are, at one layer. "
           "For text-speech, rows are the text language and columns the speech language, so the "
           "diagonal is the same sentence in the same language across modalities. For speech-speech, "
           "a filled diagonal cell is the same sentence in the same language spoken by a second voice "
           "(where the corpus has one): how much a change of voice alone moves the similarity, the "
           "reference to read the cross-lingual cells against.")

ref = state.store_ref()
sel = state.sidebar(ref, pairing=True, layer=True)
available = state.availability(ref, sel.run_id, sel.model, sel.metric, sel.pairing)
if not available.drawable:
    st.info(available.message, icon=":material/info:")
    st.stop()
if available.message:
    with st.expander("Component pairs left out of this view", icon=":material/info:"):
        st.markdown(available.message)

rows = state.metrics(ref, sel.run_id, metric=sel.metric, pairing=sel.pairing, layer=sel.layer,
                     langs=sel.langs, components=sel.components)
url_state.seed("mark_length", [True, False], True)
mark_length = sel.view != "residualised" and st.toggle(
    "Mark cells at or below their length-only baseline", key="mark_length",
    help=f"A white cross in a cell's corner: its value is at or below its {LENGTH_BASELINE_NAME}.")
if sel.view == "residualised":
    st.caption(RESIDUALISED_NOTE)
figure = heatmap_figure(rows, state.languages(ref), pairing=sel.pairing, metric=sel.metric,
                        view=sel.view, layer_label=sel.layer_label, langs=sel.langs,
                        mark_length=mark_length)
downloads.chart(figure, key="heatmap", width="content")
shown = set(rows["lang_a"]) | set(rows["lang_b"])  # the heatmap's rows and columns
item_links.cell_link(language_order(state.languages(ref), [x for x in sel.langs if x in shown]),
                     language_names(state.languages(ref)), pairing=sel.pairing, run_id=sel.run_id)
state.speech_notice(ref, [sel.run_id], sel.langs, pairing=sel.pairing)

st.subheader("Baselines", divider="gray")
st.caption("Shuffled pairs: each cell's metric recomputed after shuffling which sentence is paired "
           "with which: what unrelated sentences score. Length only: the metric between features "
           "built from each side's sentence length alone: what sentence length alone predicts. "
           "Cells well above both carry sentence-level information beyond length; the CI in the "
           "hover is a bootstrap over sentences. Raw values, whichever view is chosen above.")
downloads.table(baseline_summary(rows), hide_index=True, key="baselines")
