"""Your recording: upload or record a clip and see where it lands among the stored sentences.

Thin page: widgets here, the model and caches in ``dashboard.live``, the analysis in
``core.recording``, the figures in ``dashboard.charts.recording``.
"""

import hashlib

import streamlit as st

from core.audio import MAX_ANALYSED_S, MAX_UPLOAD_BYTES, MAX_UPLOAD_MB, AudioError
from core.languages import known_languages, language
from core.models.base import UnsupportedLanguageError
from core.recording import DEFAULT_K, MEASURE_LABEL, neighbour_table
from dashboard import availability, downloads, live, sidebar, state, url_state
from dashboard.charts import recording as rc

AUTO = "auto"
UPLOAD, RECORD = "Upload a file", "Record in the browser"
AUDIO_TYPES = ["wav", "flac", "mp3", "ogg", "opus", "m4a", "webm"]

st.title("Your recording")
st.caption("Upload a clip (or record one) and see, layer by layer, which stored sentences it lands "
           "near, how well its speech and its transcript agree compared with the corpus, where it "
           f"sits in the stored maps, and which moments carry the sentence. Up to {MAX_UPLOAD_MB} "
           f"MB; only the first {MAX_ANALYSED_S:.0f} s are analysed (Whisper's window). The clip "
           "is processed in memory and never stored.")

ref = state.store_ref()
sel = sidebar.sidebar(ref, metric=False, langs=False, view=False)
components_df = state.components(ref, sel.run_id)


def _switch_run(run_id: str) -> None:
    st.session_state["run_id"] = run_id
    st.session_state["_kept_run_id"] = run_id


runs_df = state.runs(ref)
speech_runs = [r for r in runs_df["run_id"]
               if "speech" in availability.modalities(state.components(ref, r))]
blocked = availability.recording_unavailable(components_df, sel.model, speech_runs)
if blocked:
    st.info(blocked, icon=":material/info:")
    models = dict(zip(runs_df["run_id"], runs_df["model"], strict=True))
    for run_id in speech_runs:
        st.button(f"Use {models[run_id]} · {run_id}", key=f"switch_{run_id}",
                  on_click=_switch_run, args=(run_id,))
    st.stop()

store_langs = tuple(state.languages(ref)["lang"])
lang_options = [AUTO, *known_languages()]


def _lang_label(code: str) -> str:
    if code == AUTO:
        return "identify it (Whisper)"
    return f"{language(code).name} ({code})"


left, middle, right = st.columns([2, 2, 1])
url_state.seed("recording_source", [UPLOAD, RECORD], UPLOAD)
source = left.radio("Clip", [UPLOAD, RECORD], horizontal=True, key="recording_source")
url_state.seed("recording_lang", lang_options, AUTO)
chosen_lang = middle.selectbox("Language", lang_options, format_func=_lang_label,
                               key="recording_lang",
                               help="The language spoken; 'identify it' lets the model decide.")
url_state.seed("recording_k", list(range(1, 21)), DEFAULT_K)
k = right.number_input("Neighbours (k)", min_value=1, max_value=20,
                       key="recording_k", help="Stored items listed per layer, and used to place "
                       "the clip in the maps.")
if source == UPLOAD:
    upload = st.file_uploader("Audio file", type=AUDIO_TYPES, key="recording_file",
                              help="wav, flac, mp3, ogg/opus; m4a/webm only where ffmpeg is "
                                   "installed.")
else:
    upload = st.audio_input("Record", key="recording_mic")
typed = st.text_input("What is said (optional)", key="recording_typed",
                      help="Leave empty to use the model's transcript (shown below, editable).")
if upload is None:
    st.info("Upload or record a clip to start.", icon=":material/mic:")
    with st.spinner(f"Loading {sel.model} and preparing the run's stored side for your clip…"):
        waiting_maps = live.prepare(ref, sel.run_id, sel.model,
                                    None if chosen_lang == AUTO else chosen_lang)
    if any(stored.panels for stored in waiting_maps.values()):
        # also loads the browser's chart library now rather than after the upload (~2 s of
        # script compilation in a browser without a GPU, bench/README.md)
        st.subheader("The stored maps your clip will be placed in", divider="gray")
        for component, stored in waiting_maps.items():
            downloads.chart(rc.stored_map_figure(stored), key=f"recording_waiting_{component}")
    st.stop()

progress = st.progress(0, text="Decoding the audio…")
if upload.size > MAX_UPLOAD_BYTES:  # refused before its bytes are read
    progress.empty()
    st.error(f"**This file is {upload.size / 2**20:.1f} MB, over the {MAX_UPLOAD_MB} MB limit.**",
             icon=":material/error:")
    st.stop()
data = upload.getvalue()
sha = hashlib.sha256(data).hexdigest()
try:
    clip = live.decode(sha, data)
except AudioError as error:
    progress.empty()
    st.error(f"**This clip cannot be analysed:** {error}.", icon=":material/error:")
    st.stop()
for note in clip.notes:
    st.info(f"Converted: {note}.", icon=":material/sync:")
for caution in clip.warnings:
    st.warning(caution[0].upper() + caution[1:] + ".", icon=":material/warning:")

play, wave = st.columns([1, 3])
play.audio(clip.waveform, sample_rate=clip.sampling_rate)
play.caption(f"{clip.format}, {clip.source_rate} Hz, {clip.channels} channel(s), "
             f"{clip.duration_s:.1f} s; analysed: {clip.analysed_s:.1f} s at 16 kHz mono.")
downloads.chart(rc.waveform_figure(clip.waveform, clip.sampling_rate), key="recording_wave",
                container=wave)

progress.progress(15, text=f"Loading {sel.model} and listening…")
try:
    heard = live.hear(sel.model, sha, clip.waveform, None if chosen_lang == AUTO else chosen_lang,
                      store_langs, transcribe=not typed.strip())
except live.ModelUnavailable as error:
    progress.empty()
    st.error(f"**{error}**", icon=":material/memory:")
    st.stop()
except (UnsupportedLanguageError, ValueError) as error:
    progress.empty()
    st.error(f"**{error}**", icon=":material/translate:")
    st.stop()
lang = heard["lang"]
if heard["detected"] is not None:
    st.success(f"Identified language: **{_lang_label(lang)}** (Whisper `{heard['detected']}`, "
               f"p = {heard['probability']:.2f}).", icon=":material/translate:")
transcript = heard["transcript"] or ""
text_key = f"recording_text_{sha[:16]}_{lang}"
typed_key = text_key + "_typed"
if text_key not in st.session_state or st.session_state.get(typed_key) != typed.strip():
    st.session_state[text_key] = typed.strip() or transcript  # new clip/language or new typing
    st.session_state[typed_key] = typed.strip()
text = st.text_area("Text through the model's text path", key=text_key, height=80,
                    help="The model's transcript unless you typed what is said; edit it to "
                         "change what the text path reads.")
shown = transcript if len(transcript) <= 300 else transcript[:299] + "…"
if not heard["transcribed"]:
    st.caption("Not transcribed: you typed what is said (clear the box above to see the model's "
               "transcript).")
else:
    st.caption(f"Model transcript: “{shown}”" if transcript else
               "This model gives no transcript: type what is said.")

progress.progress(35, text="Running the model over every layer…")
try:
    states = live.states(sel.model, sha, heard["speech"], lang, text)
except live.ModelUnavailable as error:
    progress.empty()
    st.error(f"**{error}**", icon=":material/memory:")
    st.stop()
progress.progress(70, text="Finding the nearest stored sentences…")
args = (ref, sel.run_id, sel.model, sha, lang, text)  # what every section's cache is keyed on
near = live.neighbours(*args, int(k), states)
languages_df = state.languages(ref)
if not text.strip():
    st.warning("No text: the text path, the agreement and the frame view need what is said.",
               icon=":material/warning:")
if near.matched:
    sentence, cer, matched_lang = near.matched
    st.info(f"The text matches stored sentence **{sentence}** ({matched_lang}, CER {cer:.2f}): it is "
            "left out of the anchors when your clip is compared, as each corpus item leaves out "
            "its own.", icon=":material/link:")

st.subheader("Nearest stored items per layer", divider="gray")
st.caption("Cosine similarity, within one representation space: the recording's states are "
           "compared with stored speech of the same point, the transcript's with stored text "
           "(Whisper's encoder and decoder are different spaces).")
for component in dict.fromkeys(near.neighbours["component"]):
    downloads.chart(rc.neighbour_score_figure(near.neighbours, languages_df, component),
                    key=f"recording_neighbours_{component}")
    with st.expander(f"Layer x rank table · {component}"):
        downloads.table(neighbour_table(near.neighbours, component),
                        key=f"recording_neighbour_table_{component}")
if not near.ranks.empty:
    downloads.chart(rc.sentence_rank_figure(near.ranks), key="recording_ranks")

progress.progress(78, text="Comparing with the corpus's own text and speech…")
agreement_rows, summary = live.agreement(*args, near.sentence, states)
st.subheader("Your text-vs-speech agreement", divider="gray")
if not agreement_rows.empty:
    measure = agreement_rows["measure"].iloc[0]
    st.caption(f"Measure: {MEASURE_LABEL[measure]}. Boxes: the corpus's own text and speech of "
               "the same sentence (green) and of different sentences (grey).")
    downloads.chart(rc.agreement_figure(agreement_rows), key="recording_agreement")
    table, column_help = rc.agreement_table(summary)
    downloads.table(table, hide_index=True, key="recording_agreement_table",
                 column_config={name: st.column_config.Column(help=text)
                                for name, text in column_help.items()})
    st.caption("Per layer: your clip's agreement beside the corpus's own text and speech of the "
               "same sentence (mean and 10th-90th percentile) and of other sentences (chance); "
               "the percentile places your clip among the same-sentence pairs. Hover a column "
               "name for what it holds.")
else:
    st.info("No text-vs-speech pair to compare (no text given, or the run has no text path).")

progress.progress(86, text="Placing your clip in the stored maps…")
placements = live.placements(*args, int(k), states)
st.subheader("Your clip in the stored maps", divider="gray")
st.caption("Placed without refitting: the cosine-weighted mean position of its k nearest stored "
           "items (full-dimensional cosine); no stored point moves. Lines join it to those items, "
           "ringed: hover a ring for its text (the Projection page names every stored point). "
           "The stored points are drawn as one image per layer (zooming enlarges it).")
maps = []
if not placements.empty:
    methods = live.map_methods(ref, sel.run_id)  # the ones shown while the page waited
    placements = placements[placements["method"] == placements["component"].map(methods)]
    maps = [(component, live.stored_map(ref, sel.run_id, component, methods[component],
                                        *rc.map_panels(placements, component)))
            for component in dict.fromkeys(placements["component"])]
if not any(stored.panels for _component, stored in maps):
    st.info("This run stored no 2-D maps.")
else:
    for component, stored in maps:
        downloads.chart(rc.clip_map_figure(stored, placements, component=component),
                        key=f"recording_map_{component}")

progress.progress(94, text="Following the sentence frame by frame…")
views = live.frames(*args, near.sentence, states)
st.subheader("Where in the clip the sentence is carried", divider="gray")
for view in views:
    st.caption(f"{MEASURE_LABEL[view.measure]}, per 20 ms encoder frame: each frame's state in "
               "place of the pooled recording. Red: the frame relates to the stored sentences as the "
               "transcript's text does; blue: the opposite. '(clip ...)' is the pooled clip's value.")
    downloads.chart(rc.frame_figure(view, clip.waveform, clip.sampling_rate),
                    key=f"recording_frames_{view.speech_component}")
if not views:
    st.info("No frame view: it needs the text path (type what is said).")
progress.empty()
