"""UMAP map of pooled states at one layer (text and speech together when the model allows)."""

import streamlit as st

from dashboard import availability, downloads, state, url_state
from dashboard.charts.projection import (
    PROJECTION_COLOURINGS,
    projection_figure,
    projection_points,
    sentence_previews,
)

st.title("Projection (UMAP)")
st.caption("Each point is one sentence in one language and modality, placed by UMAP so that items "
           "with similar pooled states lie close together. Distances are only meaningful locally.")

ref = state.store_ref()
sel = state.sidebar(ref, metric=False, view=False)
maps = state.projection_maps(ref, sel.run_id)
if maps.empty:
    st.info(f"Run `{sel.run_id}` has no stored projections. Rebuild the store with "
            "`python -m precompute build` (without `--no-umap`) to compute them.")
    st.stop()

note = availability.projection_note(state.components(ref, sel.run_id), sel.model,
                                    joint_maps=maps["components"].str.contains(" + ",
                                                                               regex=False).any())
if note:
    st.info(note, icon=":material/info:")

first, second, third = st.columns(3)
map_names = list(dict.fromkeys(maps["components"]))
url_state.seed("projection_component", map_names, map_names[0])
component = first.selectbox("Component", map_names,
                            key="projection_component",
                            help="'a + b' = a joint map of both components' items.")
options = maps[maps["components"] == component].reset_index(drop=True)
url_state.seed(f"projection_layer_{component}", list(options.index), len(options) - 1,
               param="projection_layer")
position = (second.select_slider("Layer", list(options.index),
                                 key=f"projection_layer_{component}",
                                 format_func=lambda i: options.loc[i, "label"])
            if len(options) > 1 else 0)
url_state.seed("projection_colour", list(PROJECTION_COLOURINGS), list(PROJECTION_COLOURINGS)[0])
colour_by = third.radio("Colour by", list(PROJECTION_COLOURINGS), horizontal=True,
                        key="projection_colour")
chosen = options.loc[position]

points = projection_points(
    state.projection(ref, sel.run_id, chosen["members"], chosen["method"]), state.languages(ref))
points = points[points["lang"].isin(sel.langs)]
previews = sentence_previews(points)
url_state.seed("sentence", [None, *sorted(previews)], None)
sentence = st.selectbox(
    "Connect one sentence across languages and modalities", [None, *sorted(previews)],
    key="sentence", format_func=lambda s: "none" if s is None else f"{s}: {str(previews[s])[:90]}")

title = f"{chosen['method'].upper()} of {component} · {chosen['label']}"
downloads.chart(projection_figure(points, state.languages(ref), colour_by=colour_by,
                                  sentence_id=sentence, title=title),
                key="projection")
state.speech_notice(ref, [sel.run_id], sel.langs)
st.caption("Symbols: circle = text, diamond = speech. Clusters by language mean the layer still "
           "encodes the language; a connected sentence drawn tight means the layer encodes its "
           "meaning across languages (solid/dashed paths) and modalities (dotted segments).")
