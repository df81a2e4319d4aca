"""Language x language heatmap of one pairing, metric and layer, or a difference of two: A - B."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from core.store.tables import PAIRINGS
from dashboard import differences, downloads, item_links, sidebar, state, url_state
from dashboard.charts.common import LENGTH_BASELINE_NAME, RESIDUALISED_NOTE, fmt, layer_name
from dashboard.charts.heatmap import baseline_summary, difference_figure, heatmap_figure
from dashboard.charts.languages import language_names, language_order
from dashboard.charts.transforms import grid_cells

st.title("Heatmap")
st.caption("How similar two languages' representations of the same sentences are, at one layer. "
           "For text-speech, rows are the text language and columns the speech language, so the "
           "diagonal is the same sentence in the same language across modalities. For speech-speech, "
           "a filled diagonal cell is the same sentence in the same language spoken by a second voice "
           "(where the corpus has one): how much a change of voice alone moves the similarity, the "
           "reference to read the cross-lingual cells against.")

ref = state.store_ref()
sel = sidebar.sidebar(ref, pairing=True, layer=True)
available = state.availability(ref, sel.run_id, sel.model, sel.metric, sel.pairing)
if not available.drawable:
    st.info(available.message, icon=":material/info:")
    st.stop()
if available.message:
    with st.expander("Component pairs left out of this view", icon=":material/info:"):
        st.markdown(available.message)
runs_df = state.runs(ref)
models = runs_df.set_index("run_id")["model"].astype(str).to_dict()


def _layers(run_id: str, pairing: str) -> pd.DataFrame:
    """component_a, component_b, layer_a, depth of a run's stored cells of one pairing."""
    rows = state.metrics(ref, run_id, metric=sel.metric, pairing=pairing)
    return (rows[["component_a", "component_b", "layer_a", "depth"]]
            .drop_duplicates(["component_a", "component_b", "layer_a"]).reset_index(drop=True))


def _layer_picker(container, layers: pd.DataFrame, run_id: str, depth: float, key: str,
                  label: str) -> tuple[tuple[str, str], int]:
    """B's component pair (when there is a choice) and layer; the default layer is the one at
    A's relative depth."""
    pairs = list(dict.fromkeys(zip(layers["component_a"], layers["component_b"], strict=True)))
    pair = pairs[0]
    if len(pairs) > 1:
        url_state.seed(f"{key}_components", pairs, pairs[0], param="b_components")
        pair = container.selectbox(f"{label}: components", pairs, key=f"{key}_components",
                                   format_func=lambda p: f"{p[0]} vs {p[1]}")
    own = layers[(layers["component_a"] == pair[0]) & (layers["component_b"] == pair[1])]
    options = [int(v) for v in own["layer_a"]]
    names = state.component_layer_names(state.components(ref, run_id), pair[0])
    default = differences.nearest_layer(own, depth)
    url_state.seed(key, options, default, param="b_layer")
    if len(options) > 1:
        container.select_slider(f"{label}: layer ({pair[0]})", options, key=key,
                                format_func=lambda v: layer_name(v, names))
    return pair, int(st.session_state[key])


# ---- the page's widgets, in one place
top_left, top_right = st.columns([2, 3])
url_state.seed("heatmap_mode", ["layer", "difference"], "layer")
url_state.seed("heatmap_fixed_scale", [True, False], False)
url_state.seed("mark_length", [True, False], True)
mode = top_left.radio("Draw", ["layer", "difference"], horizontal=True, key="heatmap_mode",
                      format_func={"layer": "one layer", "difference": "a difference A − B"}.get)
fixed_scale = top_right.toggle(
    "One colour scale for every layer", key="heatmap_fixed_scale",
    help="Fix the colours to the range of this pairing's values over all its layers (for a "
         "difference: ± that range's width), so two layers' heatmaps compare by eye. Off: the "
         "colours stretch over this layer's values alone.")
mark_length = mode == "layer" and sel.view != "residualised" and top_right.toggle(
    "Mark cells at or below their length-only baseline", key="mark_length",
    help=f"A white cross in a cell's corner: its value is at or below its {LENGTH_BASELINE_NAME}.")
layers_a = _layers(sel.run_id, sel.pairing)
at_a = layers_a[(layers_a["layer_a"] == sel.layer)
                & (layers_a["component_a"] == (sel.components or ("", ""))[0])]
depth_a = float(at_a["depth"].iloc[0]) if len(at_a) else 0.0
b_spec: dict = {}
voice_langs: list[str] = []
if mode == "difference":
    st.caption("A is the heatmap the sidebar chooses; pick what B differs in. Each cell shows A "
               "minus B on a diverging scale centred at 0 (red: A higher, blue: B higher). "
               "See docs/differences.md for how to read one.")
    kinds = {"layer": len(layers_a) > 1}
    other_runs = [r for r in runs_df["run_id"] if r != sel.run_id
                  and sel.metric in state.metric_names(ref, r)
                  and state.availability(ref, r, models[r], sel.metric, sel.pairing).drawable]
    kinds["run"] = bool(other_runs)
    other_pairings = [p for p in PAIRINGS if p != sel.pairing and state.availability(
        ref, sel.run_id, sel.model, sel.metric, p).drawable]
    kinds["pairing"] = bool(other_pairings)
    speech_rows = state.metrics(ref, sel.run_id, metric=sel.metric, pairing="speech-speech",
                                layer=sel.layer, langs=sel.langs, components=sel.components) \
        if sel.pairing == "speech-speech" else pd.DataFrame()
    voice_langs = differences.voice_languages(speech_rows)
    kinds["voice"] = bool(voice_langs)
    offered = [k for k, ok in kinds.items() if ok]
    if not offered:
        st.info("No difference can be drawn here: this component pair has one layer, no other "
                "run or pairing has this metric, and only a speech-speech heatmap of a run with "
                "a second voice has a voice difference.", icon=":material/info:")
        st.stop()
    left, right = st.columns([2, 3])
    url_state.seed("difference_kind", offered, offered[0])
    kind = left.radio("B differs from A in", offered, key="difference_kind",
                      format_func=differences.KINDS.get)
    missing = [k for k, ok in kinds.items() if not ok]
    if missing:
        why = {"layer": "this component pair has one layer",
               "run": "no other run has this metric and pairing",
               "pairing": "no other pairing of this run can be drawn with this metric",
               "voice": "pick the speech-speech pairing in the sidebar (a run with a second voice)"
               if sel.pairing != "speech-speech" else
               "no language of this selection has a second voice"}
        left.caption("Not offered: " + "; ".join(f"{differences.KINDS[k]} ({why[k]})"
                                                 for k in missing) + ".")
    if kind == "layer":
        pair, layer_b = _layer_picker(right, layers_a[
            (layers_a["component_a"] == sel.components[0])
            & (layers_a["component_b"] == sel.components[1])], sel.run_id,
            max(depth_a - 0.5, 0.0), "difference_layer", "B")
        b_spec = dict(run_id=sel.run_id, pairing=sel.pairing, components=pair, layer=layer_b)
    elif kind == "run":
        url_state.seed("difference_run", other_runs, other_runs[0])
        run_b = right.selectbox("B: run", other_runs, key="difference_run",
                                format_func=lambda r: f"{models[r]} · {r}")
        pair, layer_b = _layer_picker(right, _layers(run_b, sel.pairing), run_b, depth_a,
                                      f"difference_run_layer_{run_b}", "B")
        b_spec = dict(run_id=run_b, pairing=sel.pairing, components=pair, layer=layer_b)
    elif kind == "pairing":
        url_state.seed("difference_pairing", other_pairings, other_pairings[0])
        pairing_b = right.radio("B: pairing", other_pairings, key="difference_pairing",
                                horizontal=True)
        pair, layer_b = _layer_picker(right, _layers(sel.run_id, pairing_b), sel.run_id, depth_a,
                                      f"difference_pairing_layer_{pairing_b}", "B")
        b_spec = dict(run_id=sel.run_id, pairing=pairing_b, components=pair, layer=layer_b)
    else:
        b_spec = dict(run_id=sel.run_id, pairing="speech-speech", components=sel.components,
                      layer=sel.layer, voice=True)



def draw_layer() -> None:
    """One layer's heatmap and its baselines."""
    rows = state.metrics(ref, sel.run_id, metric=sel.metric, pairing=sel.pairing, layer=sel.layer,
                         langs=sel.langs, components=sel.components)
    if sel.view == "residualised":
        st.caption(RESIDUALISED_NOTE)
    zrange = differences.value_range(
        state.metrics(ref, sel.run_id, metric=sel.metric, pairing=sel.pairing, langs=sel.langs,
                      components=sel.components), sel.view) if fixed_scale else None
    figure = heatmap_figure(rows, state.languages(ref), pairing=sel.pairing, metric=sel.metric,
                            view=sel.view, layer_label=sel.layer_label, langs=sel.langs,
                            mark_length=mark_length, zrange=zrange,
                            picked=item_links.picked_cell())
    downloads.chart(figure, key="heatmap", width="content", selection_mode="points",
                    on_select=partial(item_links.take_clicked_cell, "heatmap"))
    shown = set(rows["lang_a"]) | set(rows["lang_b"])  # the heatmap's rows and columns
    order = language_order(state.languages(ref), [x for x in sel.langs if x in shown])
    item_links.cell_link(order, order, language_names(state.languages(ref)), pairing=sel.pairing,
                         run_id=sel.run_id)
    state.speech_notice(ref, [sel.run_id], sel.langs, pairing=sel.pairing)
    st.subheader("Baselines", divider="gray")
    st.caption("Shuffled pairs: each cell's metric recomputed after shuffling which sentence is "
               "paired with which: what unrelated sentences score. Length only: the metric between "
               "features built from each side's sentence length alone: what sentence length alone "
               "predicts. Cells well above both carry sentence-level information beyond length; the "
               "CI in the hover is a bootstrap over sentences. Raw values, whichever view is chosen "
               "above.")
    downloads.table(baseline_summary(rows), hide_index=True, key="baselines")


def draw_difference() -> None:
    """A minus B, its summary and both sides' baselines."""
    label_a = sel.layer_label
    languages_df = state.languages(ref)
    rows_a = state.metrics(ref, sel.run_id, metric=sel.metric, pairing=sel.pairing, layer=sel.layer,
                           langs=sel.langs, components=sel.components, resamples=True)
    run_b, pairing_b, layer_b = b_spec["run_id"], b_spec["pairing"], b_spec["layer"]
    rows_b = state.metrics(ref, run_b, metric=sel.metric, pairing=pairing_b, layer=layer_b,
                           langs=sel.langs, components=tuple(b_spec["components"]), resamples=True)
    names_b = state.component_layer_names(state.components(ref, run_b), b_spec["components"][0])
    present = (set(rows_a["lang_a"]) | set(rows_a["lang_b"])) & (set(rows_b["lang_a"])
                                                                | set(rows_b["lang_b"]))
    order = language_order(languages_df, [lang for lang in sel.langs if lang in present])
    modalities_a, modalities_b = sel.pairing.split("-"), pairing_b.split("-")
    side_a = modalities_a[0] if modalities_a[0] == modalities_b[0] else "side a"
    side_b = modalities_a[1] if modalities_a[1] == modalities_b[1] else "side b"
    if b_spec.get("voice"):
        rows_order = [lang for lang in order if lang in set(voice_langs)]
        cells_a = grid_cells(rows_a[rows_a["lang_a"] != rows_a["lang_b"]], rows_order,
                                         order, symmetric=True)
        cells_b = differences.voice_reference_cells(rows_a, rows_order, order)
        rows_b = rows_a[rows_a["lang_a"] == rows_a["lang_b"]]
        label_a = f"{sel.layer_label}: another language (first voices)"
        label_b = f"{sel.layer_label}: the same language in its second voice"
        no_interval = ""
    else:
        rows_order = order
        cells_a = grid_cells(rows_a, order, order,
                                         symmetric=modalities_a[0] == modalities_a[1])
        cells_b = grid_cells(rows_b, order, order,
                                         symmetric=modalities_b[0] == modalities_b[1])
        label_b = layer_name(layer_b, names_b)
        if run_b != sel.run_id:
            label_a, label_b = f"{sel.model} {label_a}", f"{models[run_b]} {label_b}"
        if pairing_b != sel.pairing:
            label_a, label_b = f"{sel.pairing} {label_a}", f"{pairing_b} {label_b}"
        no_interval = differences.shared_resamples(state.run_config(ref, sel.run_id),
                                                   state.run_config(ref, run_b)) \
            if run_b != sel.run_id else ""
    cells = differences.difference_cells(
        cells_a, cells_b, view=sel.view, no_interval=no_interval,
        n_permutations=state.run_config(ref, sel.run_id).get("n_permutations"))
    zbound = None
    if fixed_scale:
        everything = pd.concat([
            state.metrics(ref, sel.run_id, metric=sel.metric, pairing=sel.pairing, langs=sel.langs,
                          components=sel.components),
            state.metrics(ref, run_b, metric=sel.metric, pairing=pairing_b, langs=sel.langs,
                          components=tuple(b_spec["components"]))], ignore_index=True)
        span = differences.value_range(everything, sel.view)
        zbound = span[1] - span[0] if span is not None else None
    downloads.chart(difference_figure(cells, languages_df, rows=rows_order, columns=order,
                                      metric=sel.metric, view=sel.view, label_a=label_a,
                                      label_b=label_b, side_a=side_a, side_b=side_b, zbound=zbound,
                                      picked=item_links.picked_cell()),
                    key="heatmap_difference", width="content", selection_mode="points",
                    on_select=partial(item_links.take_clicked_cell, "heatmap_difference"))
    item_links.cell_link(rows_order, order, language_names(languages_df), pairing=sel.pairing,
                         run_id=sel.run_id)
    summary = differences.difference_summary(cells)
    notes = [f"{summary['cells']} cells; mean A − B {fmt(summary['mean'])}."]
    if summary["with_interval"] and run_b != sel.run_id:
        notes.append("The two runs drew the same sentence resamples (the same seed and number of "
                     "resamples over the same corpus sentences), so resample b is the same "
                     "sentences in both and their difference is bootstrapped jointly.")
    if summary["with_interval"]:
        notes.append(f"95% intervals from the shared sentence resamples: {summary['above']} of "
                     f"{summary['with_interval']} cells lie above 0 (A higher), {summary['below']} "
                     "below (B higher); a black dot marks them. Intervals are per cell: with many "
                     "cells, about 5% exclude 0 by chance alone.")
    elif no_interval:
        notes.append(f"No interval: {no_interval}.")
    elif sel.view == "residualised":
        notes.append(RESIDUALISED_NOTE)
    if sel.view == "raw" and (b_spec.get("voice") is None) and (
            pairing_b != sel.pairing or run_b != sel.run_id):
        what = "pairings" if pairing_b != sel.pairing else "models"
        notes.append(f"Raw values of different {what} sit on different chance levels (shuffled baselines differ by "
                     f"{fmt(summary['mean_baseline_difference'])} on average, A − B): the "
                     "'minus shuffled baseline' view in the sidebar compares them above chance.")
    if b_spec.get("voice"):
        notes.append("Rows: languages with a second voice. Each cell is the similarity of two "
                     "languages' speech minus that of the row language's speech in its two voices: "
                     "below 0, a change of language lowers speech similarity more than a change of "
                     "voice alone. The store holds a second voice only against the first voice of "
                     "the same language, so a cell cannot be redrawn wholly in the second voice.")
    st.caption(" ".join(notes))
    state.speech_notice(ref, list(dict.fromkeys([sel.run_id, run_b])), sel.langs,
                        pairing=sel.pairing if "speech" in sel.pairing else pairing_b)
    st.subheader("Baselines of A and B", divider="gray")
    sides = pd.concat([baseline_summary(rows_a).assign(side="A"),
                       baseline_summary(rows_b).assign(side="B")], ignore_index=True)
    downloads.table(sides[["side", *[c for c in sides.columns if c != "side"]]], hide_index=True,
                    key="baselines_difference")


if mode == "layer":
    draw_layer()
else:
    draw_difference()
