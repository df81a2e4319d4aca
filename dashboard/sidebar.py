"""The shared sidebar: the run, metric, pairing, layer, languages and view a page asks for,
drawn once per page and returned as a ``Selection``.

Each widget's value survives a change of page (Streamlit drops the state of widgets a page does
not draw, so a shadow copy keeps it) and lives in the URL (``dashboard.url_state``), so a link
reopens the same choice. Every option list comes from the cached queries of ``dashboard.state``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from core.metrics import descriptions
from core.store.tables import PAIRINGS
from dashboard import url_state
from dashboard.charts.common import layer_name
from dashboard.charts.languages import language_levels, language_names, language_order
from dashboard.charts.transforms import VIEWS
from dashboard.state import (
    StoreRef,
    component_layer_names,
    components,
    languages,
    metric_layers,
    metric_names,
    metric_settings,
    rebuild_command,
    runs,
)


@dataclass(frozen=True)
class Selection:
    """What the shared sidebar widgets currently say."""
    run_id: str = ""
    model: str = ""
    metric: str | None = None
    pairing: str | None = None
    layer: int | None = None
    layer_names: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    view: str = "raw"
    components: tuple[str, str] | None = None

    @property
    def layer_label(self) -> str:
        return layer_name(self.layer, self.layer_names) if self.layer is not None else ""


_SHADOW = "_kept_"


def _prepare(key: str, options: Sequence[Any], default: Any, *, multi: bool = False) -> None:
    """Seed a widget's state before it is drawn: its current value, else the link's
    (``dashboard.url_state``), else the value it had on the previous page (Streamlit drops the
    state of widgets a page does not draw), else ``default``; values no longer among ``options``
    (another run, other layers) fall back to ``default``. The value goes into the URL."""
    kept = st.session_state.get(_SHADOW + key, default)
    url_state.seed(key, options, default, multi=multi, fallback=kept)


def _remember(key: str) -> Any:
    """Keep a drawn widget's value for the next page (see ``_prepare``) and return it."""
    st.session_state[_SHADOW + key] = st.session_state[key]
    return st.session_state[key]


def sidebar(ref: StoreRef, *, run: bool = True, metric: bool = True, pairing: bool = False,
            layer: bool = False, langs: bool = True, view: bool = True) -> Selection:
    """Draw the shared sidebar widgets a page needs and return their values.

    ``run=False`` (a page that picks several runs itself) draws no run picker, and no run-dependent
    widget (metric, pairing, layer). Stops the page with a message when the store holds no runs or
    no metrics for the chosen run.
    """
    runs_df = runs(ref)
    if runs_df.empty:
        st.warning(f"This store holds no runs yet. Build one with `{rebuild_command(ref.path)}`.")
        st.stop()
    sb = st.sidebar
    if not run:
        return Selection(langs=_language_picker(ref) if langs else (),
                         view=_view_picker() if view else "raw")
    run_ids = list(runs_df["run_id"])
    complete = runs_df[runs_df["status"] == "complete"]
    # the newest complete run that reads speech (text-only runs, e.g. e5, would open most pages on
    # an explanation), else the newest complete run
    candidates = list((complete if not complete.empty else runs_df)["run_id"])
    with_speech = [r for r in candidates
                   if (components(ref, r)["modality"] == "speech").any()]
    default_run = (with_speech or candidates)[-1]
    labels = {r.run_id: f"{r.model} · {r.run_id}" + ("" if r.status == "complete" else f" ({r.status})")
              for r in runs_df.itertuples()}
    _prepare("run_id", run_ids, default_run)
    sb.selectbox("Model / run", run_ids, format_func=labels.get, key="run_id",
                 help="A run = one model over the whole corpus.")
    run_id = _remember("run_id")
    selection: dict[str, Any] = {
        "run_id": run_id, "model": str(runs_df.set_index("run_id").loc[run_id, "model"])}

    if metric:
        names = metric_names(ref, run_id)
        if not names:
            st.warning(f"Run `{run_id}` has no metrics stored (was it interrupted?). Pick another run "
                       f"or rebuild with `{rebuild_command(ref.path)}`.")
            st.stop()
        selection["metric"] = metric_picker(sb, names, metric_settings(ref, run_id))
    if pairing:
        _prepare("pairing", list(PAIRINGS), "text-speech")
        sb.radio("Pairing", PAIRINGS, key="pairing",
                 help="Which modalities are compared (side a - side b). For text-speech the rows "
                      "are the text language and the columns the speech language.")
        selection["pairing"] = _remember("pairing")
    if layer and selection.get("metric") and selection.get("pairing"):
        selection.update(_layer_slider(ref, run_id, selection["metric"], selection["pairing"]))
    if langs:
        selection["langs"] = _language_picker(ref)
    if view:
        selection["view"] = _view_picker()
    return Selection(**selection)


def metric_picker(container: Any, names: Sequence[str],
                  settings: Mapping[str, Sequence[tuple[object, object]]], *,
                  key: str = "metric") -> str:
    """The metric selector in ``container`` (the sidebar, a column): display names, the chosen
    metric's description as its help and, under it, one line with its range and chance level
    (``core.metrics.descriptions``). The value stays the metric id, so queries are unchanged."""
    names = list(names)
    _prepare(key, names, "svcca" if "svcca" in names else names[0])
    chosen = st.session_state[key]
    used = settings.get(chosen, ())
    container.selectbox("Metric", names, key=key, format_func=descriptions.display_name,
                        help=descriptions.metric_help(chosen,
                                                      descriptions.settings_text(chosen, used)))
    container.caption(descriptions.metric_line(chosen, used))
    return _remember(key)


def _view_picker() -> str:
    _prepare("view", list(VIEWS), "raw")
    st.sidebar.radio("Show", list(VIEWS), format_func=VIEWS.get, key="view",
                     help="raw: the metric itself. length-residualised: with the part that sentence "
                          "length alone explains removed. minus shuffled baseline: distance from "
                          "chance (0 = what mismatched sentence pairs score).")
    return _remember("view")


def _layer_slider(ref: StoreRef, run_id: str, metric: str, pairing: str) -> dict[str, Any]:
    """Component pair (only when there is a choice) and layer of side a, with the layer's name."""
    layers_df = metric_layers(ref, run_id, metric, pairing)
    if layers_df.empty:
        return {}
    pairs = list(dict.fromkeys(zip(layers_df["component_a"], layers_df["component_b"],
                                   strict=True)))
    _prepare("components", pairs, pairs[0])
    if len(pairs) > 1:
        st.sidebar.selectbox("Components", pairs, key="components",
                             format_func=lambda p: f"{p[0]} vs {p[1]}")
    component_a, component_b = _remember("components")
    chosen = layers_df[(layers_df["component_a"] == component_a)
                       & (layers_df["component_b"] == component_b)]
    options = [int(v) for v in chosen["layer_a"]]
    names = component_layer_names(components(ref, run_id), component_a)
    _prepare("layer", options, options[-1])
    if len(options) > 1:
        st.sidebar.select_slider(f"Layer ({component_a})", options, key="layer",
                                 format_func=lambda v: layer_name(v, names),
                                 help="Layer 0 is the input embedding; later layers are deeper.")
    else:
        st.sidebar.caption(f"Layer: {layer_name(options[0], names)} (the only one stored)")
    return {"layer": int(_remember("layer")), "layer_names": names,
            "components": (component_a, component_b)}


def _language_picker(ref: StoreRef) -> tuple[str, ...]:
    languages_df = languages(ref)
    order = language_order(languages_df)
    levels, names = language_levels(languages_df), language_names(languages_df)
    labels = {lang: f"{names.get(lang, lang)} · {levels.get(lang, 'unknown')}" for lang in order}
    _prepare("langs", order, order, multi=True)
    count = len(st.session_state["langs"])
    with st.sidebar.expander(f"Languages · {count} of {len(order)}", expanded=False):
        st.multiselect("Languages", order, key="langs", label_visibility="collapsed",
                       format_func=labels.get, placeholder="Pick languages")
        st.caption("Sorted from high- to low-resource (hours of Whisper training data).")
    chosen = tuple(_remember("langs"))
    if not chosen:
        st.info("Pick at least one language in the sidebar.")
        st.stop()
    return chosen
