"""What the tool is, what the store holds, and how to read the other pages."""

import streamlit as st

from dashboard import availability, downloads, sidebar, state
from dashboard.charts.languages import language_names, language_order
from dashboard.charts.overview import cer_figure, components_table, corpus_counts, language_summary
from dashboard.speech_source import speech_sources

st.title("Crossmodal Lens")
st.markdown(
    "How do multimodal models (Whisper, Seamless, SONAR, speech LLMs) represent **the same sentence** "
    "across **languages** and across **modalities** (text vs speech), layer by layer? A precompute "
    "step ran a model over a parallel corpus (the same sentences in every language, as text and as "
    "speech), mean-pooled every layer's states per sentence, and compared the sets of sentences with "
    "similarity metrics (SVCCA, CKA, ...), each with a shuffled-pairs baseline and a bootstrap CI. "
    "This dashboard reads those results from the store.")

ref = state.store_ref()
sel = sidebar.sidebar(ref, metric=False, langs=False, view=False)
languages_df = state.languages(ref)
items_df = state.items(ref, sel.run_id)
summary = language_summary(items_df, languages_df, state.voices(ref))

speech_all_voices = state.speech_item_count(ref)
counts = corpus_counts(items_df, speech_all_voices)
first_voice = int((items_df["modality"] == "speech").sum()) if not items_df.empty else 0
for column, (label, count) in zip(st.columns(4), counts.items(), strict=True):
    column.metric(label, count, help=(f"{first_voice} in each language's first voice, "
                                      f"{count - first_voice} in a second voice"
                                      if label == "Speech items" and count > first_voice else None))

st.subheader("Runs in this store", divider="gray")
st.caption(f"Store: `{ref.path}` (schema version {state.schema_version(ref)})")
runs_df = state.runs(ref)
downloads.table(runs_df[["run_id", "model", "created_at", "status"]], hide_index=True, key="runs")
config = state.run_config(ref, sel.run_id)
components_df = state.components(ref, sel.run_id)
st.markdown(f"Components of **{sel.model}** (run `{sel.run_id}`):")
quantised = availability.quantisation_note(config, sel.model)
if quantised:
    st.warning(quantised, icon=":material/memory:")
only = availability.reads_only_message(components_df, sel.model)
if only:
    st.info(only + " Its pages show the text-text comparisons only.", icon=":material/info:")
downloads.table(components_table(components_df, state.layers(ref, sel.run_id)),
                hide_index=True, key="components",
             column_config={"description": st.column_config.TextColumn(width="large"),
                            "conditioning": st.column_config.TextColumn(width="medium")})
st.caption("space: the representation space a component's states live in; paired cosine and "
           "retrieval are only defined between points of one space. stages: the parts of the "
           "model's path the layer points cover, with their number of points. conditioning: what "
           "the component is fed besides the input (prompt, forced target, context).")

st.subheader("Corpus languages", divider="gray")
st.caption("Ordered from high to low resource (hours of Whisper training data). The CER (character "
           "error rate of the selected run's model's own transcripts; none for a model that cannot "
           "transcribe) says how well it hears each language's speech "
           "- synthetic espeak-ng speech unless the corpus brought recordings. A high CER means that "
           "language's speech side is hard to hear, which lowers every similarity involving it. The mean "
           "can exceed 100%: a clip the model loops on produces more characters than the reference. "
           "CER clips: how many clips it comes from (a build may transcribe a sample per language "
           "and voice). Voices: the espeak-ng voices; a second voice (e.g. `de+f3`) speaks every "
           "sentence again, as a voice-change reference for speech-speech similarity (the diagonal "
           "of the speech-speech heatmap).")
downloads.table(summary, hide_index=True, height="content", key="languages", column_config={
    "whisper hours": st.column_config.NumberColumn(format="%.0f"),
    "median CER (speech)": st.column_config.NumberColumn(format="percent"),
    "mean CER (speech)": st.column_config.NumberColumn(format="percent"),
})
downloads.chart(cer_figure(summary, unavailable=availability.cer_unavailable_reason(
    components_df, config, sel.model)), key="cer")

st.markdown("**Where the speech comes from**")
downloads.table(speech_sources(state.speech_voices(ref), language_order(languages_df),
                             language_names(languages_df)), hide_index=True, width="content",
                key="speech_sources")
st.caption("Speech items per language (every voice): recorded clips of people speaking, or "
           "synthesised by a speech synthesiser (the store's `items.voice` says which, per item). "
           "Results on synthetic speech may differ on recorded speech; every page with speech "
           "results says when its speech is synthetic.")

st.subheader("How to read the plots", divider="gray")
st.markdown("""
- **Values** are similarities between two sets of pooled states of the same sentences (e.g. German
  text vs German speech); higher = more alike. Their scale depends on the metric.
- **Shuffled baseline**: the same metric after pairing each sentence with a wrong one; it is what
  unrelated sentences score. Only the distance above it means shared content. The sidebar toggle
  *minus shuffled baseline* plots exactly that distance.
- **Length-residualised**: speech length and text length correlate with many states; this view removes
  the part of the value that length alone predicts.
- **CIs** are 95% intervals over sentences: the value ± 1.96 bootstrap standard deviations
  (percentile intervals of SVCCA/CKA sit above the value, because a resample repeats sentences).
  Means over languages or layers are bootstrapped jointly: every row uses the same sentence
  resamples, so their shared noise is neither ignored nor double-counted.
- **Resource level** (high / medium / low) groups languages by how much data the model saw. Charts
  keep one colour family per level.
- **Pages**: *Heatmap* compares every language pair at one layer; *Layer curves* follow the
  similarity through the layers; *Compare models* overlays several runs on the relative depth along
  each model's path; *Projection* shows a 2-D map of the items; *Findings* checks the reference
  study's four findings on this run; *Items* lists the sentences behind them and plays their speech.
  Every table and chart downloads, and the URL keeps the view: copy it to share exactly this.
""")
