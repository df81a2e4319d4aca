"""Several models on one axis: a comparison family's mean over languages by relative path depth."""

import pandas as pd
import streamlit as st

from dashboard import comparison, downloads, sidebar, state, url_state
from dashboard.charts.common import LENGTH_BASELINE_NAME, RESIDUALISED_NOTE
from dashboard.charts.compare import compare_figure, run_colours
from dashboard.charts.transforms import component_pairs
from dashboard.stages import stage_spans

st.title("Compare models")
st.caption("One line per run (model): the mean over language pairs of one comparison family, "
           "against the relative depth along the model's whole path, so models of different depth "
           "and architecture share one axis. Dotted verticals in a run's colour mark where its "
           "stages (front end, encoder, adaptor, LLM, ...) meet.")

ref = state.store_ref()
runs_df = state.runs(ref)
sel = sidebar.sidebar(ref, run=False)
complete = runs_df[runs_df["status"] == "complete"]
options = list((complete if not complete.empty else runs_df)["run_id"])
models = runs_df.set_index("run_id")["model"].astype(str).to_dict()
url_state.seed("compare_runs", options, options, multi=True)
run_ids = st.multiselect("Runs (models)", options, key="compare_runs",
                         format_func=lambda r: models[r] if models[r] == r
                         else f"{models[r]} · {r}")
if not run_ids:
    st.info("Pick at least one run.")
    st.stop()

metrics = list(dict.fromkeys(m for r in run_ids for m in state.metric_names(ref, r)))
if not metrics:
    st.warning("None of the chosen runs has metrics stored.")
    st.stop()
left, right = st.columns([1, 2])
settings: dict[str, list] = {}
for run_id in run_ids:  # every chosen run's k and n of each metric, for the selector's help
    for name, used in state.metric_settings(ref, run_id).items():
        settings.setdefault(name, []).extend(used)
metric = sidebar.metric_picker(left, metrics, settings, key="compare_metric")
url_state.seed("compare_family", list(comparison.FAMILIES), list(comparison.FAMILIES)[0])
family = right.radio("Comparison", list(comparison.FAMILIES), key="compare_family",
                     format_func=comparison.FAMILIES.get, horizontal=True)
pairing = family
depth_note = ("x = depth along the speech side's path (side b): where on its way through the "
              "model the speech meets the text" if family == "text-speech"
              else "x = depth along side a's path (both sides are the same component)")
controls = sel.view != "residualised"  # the store has no CI and no baselines for residualised values
left, right = st.columns(2)
url_state.seed("compare_ci", [True, False], True)
url_state.seed("compare_length", [True, False], True)
show_ci = controls and left.toggle("Show 95% confidence intervals", key="compare_ci")
show_length = controls and right.toggle(
    "Show the length-only baseline", key="compare_length",
    help=f"Dash-dot, in each run's colour: the {LENGTH_BASELINE_NAME}.")
if not controls:
    st.caption(RESIDUALISED_NOTE)

labels = {r: comparison.run_label(models[r], r, [models[o] for o in run_ids]) for r in run_ids}
curves, spans, excluded = [], [], []
pair_choice = st.container()
for run_id in run_ids:
    label = labels[run_id]
    available = state.availability(ref, run_id, models[run_id], metric, pairing)
    if not available.drawable:
        excluded.append(comparison.not_comparable(label, available.message))
        continue
    rows = comparison.family_rows(state.metrics(ref, run_id, metric=metric, pairing=pairing,
                                                langs=sel.langs), family)
    pairs = component_pairs(rows)
    if not pairs:
        excluded.append(comparison.not_comparable(
            label, f"it has no {comparison.FAMILIES[family]} rows for the chosen languages "
                   "(cross-lingual families need at least two languages)."))
        continue
    chosen = pairs[0]
    if len(pairs) > 1:
        url_state.seed(f"compare_{run_id}", pairs, pairs[0])
        chosen = pair_choice.selectbox(f"Component pair of {label}", pairs, key=f"compare_{run_id}",
                                       format_func=lambda p: f"{p[0]} vs {p[1]}")
    curve = comparison.family_curve(rows, family, view=sel.view, components=chosen)
    if curve.empty:
        excluded.append(comparison.not_comparable(
            label, f"its {metric} values are all missing for this view."))
        continue
    curves.append(curve.assign(run=label))
    spans.append(stage_spans(state.layers(ref, run_id),
                             comparison.depth_component(family, chosen)).assign(run=label))

curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
    columns=[*comparison.CURVE_COLUMNS, "run"])
spans_df = pd.concat(spans, ignore_index=True) if spans else pd.DataFrame()
if curves:
    downloads.chart(compare_figure(
        curves_df, spans_df, metric=metric, family=family, view=sel.view, show_ci=show_ci,
        colours=run_colours([labels[r] for r in run_ids]),
        depth_note=depth_note, show_length=show_length), key="compare")
    st.caption(("Bands: 95% CI of the mean over language pairs (the bootstrap CI where only one "
                "pair is left). " if show_ci else "")
               + ("Dashed, in a run's colour: its shuffled-pairs baseline. " if controls else "")
               + ("Dash-dot: its length-only baseline (what sentence length alone predicts). "
                  if show_length else "")
               + "Stage names above the plot, one row per run, in the run's colour; click a "
                 "legend entry to hide a run.")
else:
    st.info(f"None of the chosen runs can be compared on {comparison.FAMILIES[family]} "
            f"{metric}; see why below.", icon=":material/info:")
state.speech_notice(ref, [r for r in run_ids if labels[r] in set(curves_df["run"])], sel.langs,
                    pairing=pairing)

if excluded:
    st.subheader("Not comparable", divider="gray")
    for entry in excluded:
        with st.container(border=True):
            st.markdown(f"**{entry['run']}**: not comparable, because:\n\n{entry['reason']}")
