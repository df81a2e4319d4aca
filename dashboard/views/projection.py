"""UMAP maps of pooled states, aligned from layer to layer, with a box/lasso selection that is
listed, highlighted in every layer's map and followed into the other languages."""

from functools import partial

import streamlit as st

from dashboard import availability, downloads, item_links, sidebar, state, url_state
from dashboard import projection_selection as selection_
from dashboard.charts.languages import language_names, language_order
from dashboard.charts.projection import (
    PROJECTION_COLOURINGS,
    map_views,
    partner_positions,
    projection_figure,
)

#: the page's own record of the selected item ids (a chart's selection is lost when it redraws)
SELECTION_KEY = "projection_selection"

st.title("Projection (UMAP)")
st.caption("Each point is one sentence in one language and modality, placed by UMAP so that items "
           "with similar pooled states lie close together. Distances are only meaningful locally. "
           "Each layer's map is turned (or mirrored) onto the one before, so moving the layer "
           "slider moves points only where the layers differ.")

ref = state.store_ref()
sel = sidebar.sidebar(ref, metric=False, view=False)
maps = state.projection_maps(ref, sel.run_id)
if maps.empty:
    st.info(f"Run `{sel.run_id}` has no stored projections. Rebuild the store with "
            "`python -m precompute build` (without `--no-umap`) to compute them.")
    st.stop()

components = state.components(ref, sel.run_id)
views = map_views(maps, components)
note = availability.projection_note(components, sel.model,
                                    joint_maps=maps["components"].str.contains(" + ",
                                                                               regex=False).any())
if note:
    st.info(note + (" Side by side, a selection on one map is shown on the other."
                    if any(len(v) > 1 for v in views.values()) else ""), icon=":material/info:")

first, second, third = st.columns(3)
url_state.seed("projection_component", list(views), list(views)[0])
view = first.selectbox("Map", list(views), key="projection_component",
                       help="'a + b' = a joint map of both components' items; 'a | b' = the two "
                            "components' maps side by side, linked by selection.")
labels = views[view]
options = maps[maps["components"] == labels[0]].reset_index(drop=True)
url_state.seed(f"projection_layer_{view}", list(options.index), len(options) - 1,
               param="projection_layer")
position = (second.select_slider("Layer", list(options.index),
                                 key=f"projection_layer_{view}",
                                 format_func=lambda i: options.loc[i, "label"])
            if len(options) > 1 else 0)
url_state.seed("projection_colour", list(PROJECTION_COLOURINGS), list(PROJECTION_COLOURINGS)[0])
colour_by = third.radio("Colour by", list(PROJECTION_COLOURINGS), horizontal=True,
                        key="projection_colour")

languages = state.languages(ref)
items = state.items(ref)
positions = {labels[0]: position}
if len(labels) > 1:
    depth = state.layers(ref, sel.run_id).set_index(["component", "layer"])["depth"]
    side_maps = maps[maps["components"] == labels[1]].reset_index(drop=True)
    # a map's relative depth: its first member's (its place in the list when none is stored)
    depths = [[float(depth.get(m["members"][0], i / max(len(frame) - 1, 1)))
               for i, m in frame.iterrows()] for frame in (options, side_maps)]
    positions[labels[1]] = partner_positions(*depths)[position]
shown = {label: state.projection_layer_points(ref, sel.run_id, label, positions[label], sel.langs)
         for label in labels}


def take_selection(chart_key: str) -> None:
    """A box or lasso selection on one map: it becomes the page's selection (side by side: with
    the same sentences' items of the other map). An empty event is ignored: the chart sends one
    when it is redrawn, and "Clear selection" empties the list on purpose."""
    picked = selection_.event_item_ids(st.session_state.get(chart_key))
    if not picked:
        return
    if len(labels) > 1:
        picked = selection_.with_counterparts(items, picked, ["text", "speech"])
    st.session_state[SELECTION_KEY] = picked


if SELECTION_KEY not in st.session_state:  # a link's selection (ids as ranges)
    linked = url_state.parse_ids("selection", url_state.query_value(st.query_params, "selection"))
    url_state.notify(linked.note)
    st.session_state[SELECTION_KEY] = linked.value
chosen_ids = [int(i) for i in st.session_state.get(SELECTION_KEY, [])]
url_state.write("selection", url_state.encode_ids(chosen_ids) if chosen_ids else None)
previews = state.projection_sentence_previews(ref, sel.run_id, labels[0], positions[labels[0]],
                                              sel.langs)
url_state.seed("sentence", [None, *sorted(previews)], None)
sentence = st.selectbox(
    "Connect one sentence across languages and modalities", [None, *sorted(previews)],
    key="sentence", format_func=lambda s: "none" if s is None else f"{s}: {str(previews[s])[:90]}")

columns = st.columns(len(labels)) if len(labels) > 1 else [st.container()]
for i, (label, column) in enumerate(zip(labels, columns, strict=True)):
    frame_maps = maps[maps["components"] == label].reset_index(drop=True)
    title = f"UMAP of {label} · {frame_maps.loc[positions[label], 'label']}"
    bounds = state.aligned_bounds(ref, sel.run_id, label)
    figure = projection_figure(shown[label], languages, colour_by=colour_by,
                               sentence_id=sentence, title=title, selected=chosen_ids,
                               ranges=((bounds.x0, bounds.x1), (bounds.y0, bounds.y1)),
                               height=600 if len(labels) == 1 else 520,
                               legend=i == len(labels) - 1,
                               base=state.projection_map_base(ref, sel.run_id, label,
                                                              positions[label], colour_by,
                                                              sel.langs))
    chart_key = f"projection_map_{i}"
    downloads.chart(figure, key=chart_key, container=column,
                    on_select=partial(take_selection, chart_key), selection_mode=("box", "lasso"))
state.speech_notice(ref, [sel.run_id], sel.langs)
st.caption("Symbols: circle = text, diamond = speech. Drag a box or lasso (toolbar) to select "
           "points. Clusters by language mean the layer still encodes the language; a connected "
           "sentence drawn tight means the layer encodes its meaning across languages "
           "(solid/dashed paths) and modalities (dotted segments).")

st.subheader("Selection")
names = language_names(languages)
order = language_order(languages)
table = selection_.selection_table(items, chosen_ids, names, order)
if table.empty:  # nothing selected, or ids this store does not hold
    st.caption("Nothing selected yet: drag a box or lasso over a map to list those sentences, "
               "hear them, and follow them through every layer.")
    state.projection_layers_ahead(ref, sel.run_id, tuple(labels), sel.langs, colour_by)
    st.stop()


def add_other_languages() -> None:
    st.session_state[SELECTION_KEY] = selection_.in_other_languages(
        items, st.session_state.get(SELECTION_KEY, []), list(sel.langs))


def clear_selection() -> None:
    st.session_state[SELECTION_KEY] = []


left, middle, right = st.columns([3, 2, 1])
left.caption(selection_.selection_summary(table))
middle.button("These sentences in the other languages", on_click=add_other_languages,
              key="projection_other_languages", icon=":material/translate:",
              help="Add the same sentences, in the same modalities, in every language picked in "
                   "the sidebar.")
right.button("Clear selection", on_click=clear_selection, key="projection_clear",
             icon=":material/deselect:")
if right.button("Open in Items", key="projection_items", icon=":material/format_list_bulleted:",
                help="The Items page with exactly these items: their text in every language, "
                     "measurements, playback."):
    item_links.open_items(chosen_ids, run_id=sel.run_id)
downloads.table(table.drop(columns=["item_id", "lang"]).rename(
                 columns={"sentence_id": "sentence", "name": "language",
                          "duration_s": "duration (s)"}),
                hide_index=True, key="projection_table",
                column_config={"duration (s)": st.column_config.NumberColumn(format="%.2f")})

# Play control: the Items page's checked playback (a recording from its file, a synthesis redone
# and checked against the build's)
speech = table[table["modality"] == "speech"]
if not speech.empty:
    playable = selection_.player_labels(speech)
    heard = st.selectbox("Hear a selected speech item", list(playable), key="projection_play",
                         format_func=playable.get)
    item = state.corpus_items(ref, sel.run_id).set_index("item_id").loc[int(heard)]
    audio = state.item_audio(item["text"], item["voice"], item["duration_s"], item["path"],
                             item["file_sha256"], item["waveform_sha256"])
    if audio.waveform is None:
        st.warning(audio.message[0].upper() + audio.message[1:], icon=":material/volume_off:")
    else:
        st.audio(audio.waveform, sample_rate=audio.sampling_rate)
        st.caption(("✓ " if audio.verified else "") + audio.message)

downloads.chart(state.projection_layers_figure(ref, sel.run_id, tuple(labels), colour_by,
                                               sel.langs, selection_.selection_key(chosen_ids)),
                key="projection_layers")
