"""Items: the store's corpus, one sentence in every language side by side, filtered, and heard.

Thin page: tables from ``dashboard.corpus_items``, audio from ``state.item_audio`` (which calls
``core.item_audio``), links in from ``dashboard.item_links``, state in the URL through
``dashboard.url_state``.
"""

import streamlit as st

from core.store.tables import PAIRINGS
from dashboard import corpus_items as ci
from dashboard import downloads, item_links, sidebar, state, url_state
from dashboard.charts.items import item_waveform_figure
from dashboard.charts.languages import language_names, language_order

#: speech items played at once (each is synthesised or read, then drawn)
MAX_PLAYED = 8
VIEWS = {"sentences": "one row per sentence, languages side by side",
         "items": "one row per item (duration, tokens, transcript, CER)"}

st.title("Items")
st.caption("The sentences behind every number: each sentence in every language (text and speech), "
           "with what the run measured on each item (speech duration, tokens pooled, the model's "
           "transcript and its character error rate, where stored). Select a row to hear it.")

ref = state.store_ref()
sel = sidebar.sidebar(ref, metric=False, langs=False, view=False)
languages_df = state.languages(ref)
names = language_names(languages_df)
items = ci.with_context(state.corpus_items(ref, sel.run_id), languages_df)
if items.empty:
    st.info("This store holds no items.", icon=":material/info:")
    st.stop()
order = language_order(languages_df, items["lang"].unique())

# ------------------------------------------------------------------------- where the link came from
if "item_ids_shown" not in st.session_state:
    parsed = url_state.parse_ids(item_links.IDS_PARAM,
                                 url_state.query_value(st.query_params, item_links.IDS_PARAM))
    url_state.notify(parsed.note)
    known = set(items["item_id"])
    unknown = [i for i in parsed.value if i not in known]
    if unknown:
        url_state.notify(f"The link names {len(unknown)} item id(s) this store does not hold "
                         f"(first: {unknown[0]}); they are left out.")
    st.session_state["item_ids_shown"] = tuple(i for i in parsed.value if i in known)
shown_ids = st.session_state["item_ids_shown"]
url_state.write(item_links.IDS_PARAM, url_state.encode_ids(shown_ids) if shown_ids else None)
cell_options = [(p, a, b) for p in PAIRINGS for a in order for b in order]
cell = url_state.seed("item_cell", [None, *cell_options], None, param=item_links.CELL_PARAM)
if cell is not None:
    side_a, side_b = cell[0].split("-")
    st.info(f"Behind the {cell[0]} heatmap cell **{names.get(cell[1], cell[1])} {side_a}** × "
            f"**{names.get(cell[2], cell[2])} {side_b}**: a cell's value is computed over every "
            "sentence both sides share, so all of these sentences are behind it.",
            icon=":material/grid_on:")
if shown_ids:
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.info(f"Showing the {len(shown_ids)} item(s) the link selected.",
              icon=":material/filter_alt:")
    if right.button("Show every item", key="clear_ids"):
        st.session_state["item_ids_shown"] = ()
        st.session_state["item_cell"] = None
        st.rerun()

# --------------------------------------------------------------------------------------- filters
levels = list(dict.fromkeys(items.sort_values("lang", key=lambda s: s.map(order.index))["level"]))
ranks = sorted(int(r) for r in items.loc[items["modality"] == "speech", "voice_rank"].unique())
with st.expander("Filters", expanded=True, icon=":material/filter_list:"):
    first, second, third, fourth = st.columns([3, 2, 2, 2])
    url_state.seed("item_langs", order, order, multi=True, param=item_links.LANGS_PARAM)
    langs = first.multiselect("Languages", order, key="item_langs",
                              format_func=lambda lang: names.get(lang, lang))
    url_state.seed("item_levels", levels, levels, multi=True)
    chosen_levels = second.multiselect("Resource level", levels, key="item_levels")
    url_state.seed("item_modalities", ["text", "speech"], ["text", "speech"], multi=True)
    modalities = third.multiselect("Modality", ["text", "speech"], key="item_modalities")
    url_state.seed("item_voices", ranks, ranks, multi=True)
    voices = fourth.multiselect("Voice", ranks, key="item_voices",
                                format_func=lambda r: ci.VOICE_RANKS.get(r, f"voice {r + 1}"),
                                help="Second voice: the same sentence spoken again by another "
                                     "espeak-ng voice (six languages), a voice-change reference.")
    url_state.seed_text("item_search")
    search = st.text_input("Search the text and transcripts", key="item_search",
                           placeholder="a word, in any script")
    sliders = st.columns(3)
    ranges = {}
    for column, (key, label, values, step, shown) in zip(sliders, [
            ("item_characters", "Length (characters)", items["characters"], 1.0, "%.0f"),
            ("item_duration", "Speech duration (s)", items["duration_s"], 0.1, "%.1f"),
            ("item_cer", "CER (speech, where stored; 1 = 100%)", items["cer"], 0.01, "%.2f")],
            strict=True):
        bounds = ci.value_range(values, step=step)
        if bounds is None:
            column.caption(f"{label}: nothing stored to filter by.")
            continue
        url_state.seed_range(key, bounds)
        chosen = column.slider(label, bounds[0], bounds[1], key=key, step=step, format=shown)
        ranges[key] = None if tuple(chosen) == tuple(bounds) else tuple(chosen)

filters = ci.ItemFilters(langs=tuple(langs), levels=tuple(chosen_levels),
                         modalities=tuple(modalities), voice_ranks=tuple(voices),
                         characters=ranges.get("item_characters"),
                         duration_s=ranges.get("item_duration"), cer=ranges.get("item_cer"),
                         search=search, item_ids=tuple(shown_ids))
if not langs or not chosen_levels or not modalities:
    st.info("Pick at least one language, resource level and modality.", icon=":material/info:")
    st.stop()
chosen = ci.filter_items(items, filters)

# ---------------------------------------------------------------------------------------- tables
url_state.seed("item_view", list(VIEWS), "sentences")
view = st.radio("Show", list(VIEWS), key="item_view", format_func=VIEWS.get, horizontal=True)
st.caption(f"{chosen['sentence_id'].nunique()} sentence(s), {len(chosen)} item(s) "
           f"({int((chosen['modality'] == 'speech').sum())} speech) pass the filters.")
if view == "sentences":
    table = ci.side_by_side(chosen, languages_df, langs)
    event = downloads.table(table, key=ci.rows_key("item_sentences", table["sentence_id"]),
                            name="sentences", hide_index=True,
                            on_select="rerun", selection_mode="single-row",
                            column_config={"sentence_id": st.column_config.NumberColumn(
                                "sentence", format="%d"),
                                "mean CER": st.column_config.NumberColumn(format="percent")})
    rows = event.selection.rows if event is not None else []
    picked = [int(table.iloc[rows[0]]["sentence_id"])] if rows else []
else:
    table = ci.item_table(chosen, languages_df)
    event = downloads.table(table, key=ci.rows_key("item_items", table["item_id"]),
                            name="items", hide_index=True,
                            on_select="rerun", selection_mode="multi-row",
                            column_config={"cer": st.column_config.NumberColumn(
                                "CER", format="percent"),
                                "duration_s": st.column_config.NumberColumn(
                                    "duration (s)", format="%.2f"),
                                "text": st.column_config.TextColumn(width="large"),
                                "transcript": st.column_config.TextColumn(width="medium")})
    rows = event.selection.rows if event is not None else []
    picked = [int(i) for i in table.iloc[rows]["item_id"]] if rows else []

# ---------------------------------------------------------------------------------------- hearing
st.subheader("Hear it", divider="gray")
speech = chosen[chosen["modality"] == "speech"]
if view == "items" and picked:
    playing = speech[speech["item_id"].isin(picked)]
    if playing.empty:
        st.caption("The selected rows are text items: select speech rows to hear them.")
else:
    sentence_ids = sorted(int(s) for s in chosen["sentence_id"].unique())
    previews = ci.sentence_previews(items[items["sentence_id"].isin(sentence_ids)], languages_df)
    if picked:
        st.session_state["hear_sentence"] = picked[0]
    url_state.seed("hear_sentence", sentence_ids, sentence_ids[0] if sentence_ids else None)
    left, right = st.columns([3, 2])
    sentence = left.selectbox("Sentence", sentence_ids, key="hear_sentence",
                              format_func=lambda s: f"{s}: {str(previews.get(s, ''))[:90]}")
    spoken = [lang for lang in langs if lang in set(speech["lang"])]
    default_langs = (list(dict.fromkeys([cell[1], cell[2]])) if cell is not None
                     else spoken[:2])
    url_state.seed("hear_langs", spoken, [lang for lang in default_langs if lang in spoken],
                   multi=True)
    hear_langs = right.multiselect("Languages to hear", spoken, key="hear_langs",
                                   max_selections=MAX_PLAYED,
                                   format_func=lambda lang: names.get(lang, lang))
    playing = (ci.speech_items(speech, sentence, hear_langs, voices or ranks)
               if sentence is not None else speech.iloc[0:0])
if playing.empty and not speech.empty:
    st.caption("Pick a sentence and languages (or select rows in the table) to hear them.")
elif speech.empty:
    st.caption("No speech item passes the filters.")
for item in playing.head(MAX_PLAYED).itertuples():
    heard = state.item_audio(item.text, item.voice, item.duration_s, item.path,
                             item.file_sha256, item.waveform_sha256)
    label = f"**{names.get(item.lang, item.lang)}** · {ci.VOICE_RANKS.get(item.voice_rank, '')}" \
            f" · item {item.item_id}"
    with st.container(border=True):
        if heard.waveform is None:
            st.markdown(label)
            st.warning(heard.message[0].upper() + heard.message[1:],
                       icon=":material/volume_off:")
            continue
        play, wave = st.columns([1, 2])
        play.markdown(label)
        play.audio(heard.waveform, sample_rate=heard.sampling_rate)
        play.caption(("✓ " if heard.verified else "") + heard.message)
        if isinstance(item.transcript, str) and item.transcript:
            play.caption(f"Transcript: {item.transcript}"
                         + (f" (CER {item.cer:.0%})" if item.cer == item.cer else ""))
        downloads.chart(item_waveform_figure(heard.waveform, heard.sampling_rate,
                                             f"{item.text[:60]}"),
                        key=f"item_wave_{item.item_id}", container=wave)
if len(playing) > MAX_PLAYED:
    st.caption(f"The first {MAX_PLAYED} of {len(playing)} are played; narrow the selection.")
state.speech_notice(ref, [sel.run_id], langs)
