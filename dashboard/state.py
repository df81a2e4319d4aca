"""The dashboard's one door to the store: which file, and cached queries.

Pages stay thin: they call ``store_ref()`` here and ``dashboard.sidebar.sidebar(...)``, query
through the cached functions below, and hand the frames to ``dashboard.charts``. No SQL here
either: every read goes through ``core.store.Store``'s read API.

Caching: the open Store is a ``st.cache_resource`` keyed on path + file mtime, so a store republished
with ``publish_atomically`` (new mtime) is picked up on the next rerun; the old one is closed first,
because DuckDB shares one database instance per path within a process. Query results are
``st.cache_data`` keyed on the same pair.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from core.item_audio import ItemAudio
from core.item_audio import item_audio as core_item_audio
from core.replication import is_derived, run_info, unreplicated
from core.replication import replication_groups as replication_groups_of
from core.store import Store
from dashboard import availability as availability_
from dashboard import projection_selection, speech_source
from dashboard.charts import projection as projection_charts
from dashboard.charts import projection_layers
from dashboard.charts.common import layer_name
from dashboard.charts.point_raster import Bounds

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_PATH = Path(__file__).resolve().parent / "app.py"
DEFAULT_STORE = REPO_ROOT / "data" / "crossmodal_lens.duckdb"
STORE_ENV = "CROSSMODAL_LENS_STORE"

T = TypeVar("T")


# ---------------------------------------------------------------------------------- which store

def resolve_store_path(argv: Sequence[str] | None = None,
                       environ: Mapping[str, str] | None = None) -> Path:
    """``streamlit run dashboard/app.py -- PATH`` (or ``--store PATH``) wins, then
    ``$CROSSMODAL_LENS_STORE``, then the bundled ``data/crossmodal_lens.duckdb`` of this checkout.

    Relative user paths are taken from the current directory (where the user typed them); the
    default is resolved from this file, so it works from any working directory.
    """
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    chosen = _store_argument(argv) or environ.get(STORE_ENV, "").strip()
    return Path(chosen).expanduser().resolve() if chosen else DEFAULT_STORE


def _store_argument(argv: Sequence[str]) -> str | None:
    """The store path among the script arguments, but only when argv is the app's own: streamlit sets
    ``argv[0]`` to the script, while under pytest (AppTest) argv holds pytest's arguments."""
    if len(argv) < 2 or Path(argv[0]).resolve() != APP_PATH:
        return None
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg == "--store" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--store="):
            return arg.split("=", 1)[1]
    positional = [a for a in args if not a.startswith("-")]
    return positional[0] if positional else None


def rebuild_command(path: Path | str) -> str:
    return f"python -m precompute build --model whisper-base --out {path}"


def rebuild_hint(path: Path) -> str:
    return (f"Build it with `{rebuild_command(path)}`, or point the dashboard at "
            f"another store: `{STORE_ENV}=/path/to/store.duckdb streamlit run dashboard/app.py` "
            "(or `streamlit run dashboard/app.py -- /path/to/store.duckdb`).")


class StoreRef(NamedTuple):
    """Cache key of an open store: its path and the file's mtime (changes when republished)."""
    path: str
    mtime_ns: int


@dataclass
class _Handle:
    store: Store
    lock: threading.Lock


def _release(handle: _Handle) -> None:
    with handle.lock:
        handle.store.close()


@st.cache_resource(show_spinner="Opening the store…", on_release=_release, max_entries=8)
def _open_store(path: str, mtime_ns: int) -> _Handle:
    return _Handle(Store.open(path, read_only=True), threading.Lock())


_SEEN_MTIME: dict[str, int] = {}
_SEEN_LOCK = threading.Lock()


def _close_replaced(path: str, mtime_ns: int) -> None:
    """Close the Store opened on an older version of ``path`` before opening the new one."""
    with _SEEN_LOCK:
        previous = _SEEN_MTIME.get(path)
        _SEEN_MTIME[path] = mtime_ns
    if previous is not None and previous != mtime_ns:
        _open_store.clear(path, previous)
        st.cache_data.clear()


def store_ref() -> StoreRef:
    """Open (or reuse) the store; on a missing or incompatible file show why and stop the page."""
    path = resolve_store_path()
    if not path.is_file():
        st.error(f"**No store found at `{path}`.**\n\n{rebuild_hint(path)}", icon=":material/error:")
        st.stop()
    mtime_ns = path.stat().st_mtime_ns
    _close_replaced(str(path), mtime_ns)
    try:
        _open_store(str(path), mtime_ns)
    except Exception as exc:  # noqa: BLE001 - any failure to open is shown to the user, not raised
        st.error(f"**The store at `{path}` cannot be used by this version of the dashboard.**\n\n"
                 f"{exc}\n\nRebuild it with `{rebuild_command(path)}`.",
                 icon=":material/error:")
        st.stop()
    return StoreRef(str(path), mtime_ns)


def read_store(ref: StoreRef, query: Callable[[Store], T]) -> T:
    """``query`` run on the store of ``ref``, opened once per process, under its lock: every
    session's thread shares its one DuckDB connection (``dashboard.live`` reads through it too)."""
    handle = _open_store(ref.path, ref.mtime_ns)
    with handle.lock:  # one DuckDB connection is shared by every session's thread
        return query(handle.store)


# ------------------------------------------------------------------------------- cached queries

@st.cache_data(show_spinner=False, max_entries=64)
def runs(ref: StoreRef, *, derived: bool = False) -> pd.DataFrame:
    """The store's runs; derived runs (``precompute halves``: parts of another run's sentences,
    verdict metrics only) only with ``derived``: the Replication page reads them, the pages that
    pick one run (and need its activations, maps or every metric) leave them out."""
    frame = read_store(ref, lambda s: s.runs())
    if derived or frame.empty:
        return frame
    return frame[[not is_derived(c) for c in frame["config"]]].reset_index(drop=True)


@st.cache_data(show_spinner=False, max_entries=64)
def languages(ref: StoreRef) -> pd.DataFrame:
    return read_store(ref, lambda s: s.languages())


@st.cache_data(show_spinner=False, max_entries=16)
def items(ref: StoreRef, run_id: str | None = None) -> pd.DataFrame:
    """Items; with ``run_id``, that run's own token counts, transcripts and CER."""
    return read_store(ref, lambda s: s.items(run_id=run_id))


@st.cache_data(show_spinner=False, max_entries=16)
def corpus_items(ref: StoreRef, run_id: str | None = None) -> pd.DataFrame:
    """Every item, every voice (the Items page); with ``run_id``, that run's token counts,
    transcripts and CER."""
    items = read_store(ref, lambda s: s.items(run_id=run_id, all_voices=True))
    sources = read_store(ref, lambda s: s.item_sources())
    return items.merge(sources, on="item_id", how="left")


@st.cache_data(show_spinner="Making the speech…", max_entries=64)
def item_audio(text: str, voice: str | None, duration_s: float | None,
               recording_path: str | None = None, file_sha256: str | None = None,
               waveform_sha256: str | None = None) -> ItemAudio:
    """A speech item's audio (``core.item_audio``: its recording, or its synthesis redone and
    checked against the build's); a result with a message when it cannot be played."""
    def known(value):  # NaN / None from a left join: nothing stored
        return value if isinstance(value, str) and value else None

    duration = None if duration_s is None or duration_s != duration_s else float(duration_s)
    return core_item_audio(text, voice, duration, recording_path=known(recording_path),
                           file_sha256=known(file_sha256),
                           waveform_sha256=known(waveform_sha256))


@st.cache_data(show_spinner=False, max_entries=16)
def speech_voices(ref: StoreRef) -> pd.DataFrame:
    """lang, voice_rank, voice and n_items (how many speech items that voice speaks) of the
    store's speech, every voice: who made the speech (``dashboard.speech_source``)."""
    frame = read_store(ref, lambda s: s.items("speech", all_voices=True))
    return (frame.groupby(["lang", "voice_rank", "voice"], dropna=False, sort=True).size()
            .rename("n_items").reset_index())


def speech_item_count(ref: StoreRef) -> int:
    """Speech items of the store over every voice (``items`` keeps each sentence's first)."""
    return int(speech_voices(ref)["n_items"].sum())


def voices(ref: StoreRef) -> pd.DataFrame:
    """lang, voice_rank, voice of the store's speech items (every voice)."""
    return speech_voices(ref)[["lang", "voice_rank", "voice"]]


@st.cache_data(show_spinner=False, max_entries=64)
def layers(ref: StoreRef, run_id: str | None = None) -> pd.DataFrame:
    """Layer points (stage, depth, space) of one run, or of every run."""
    return read_store(ref, lambda s: s.layers(run_id))


@st.cache_data(show_spinner=False, max_entries=64)
def run_config(ref: StoreRef, run_id: str) -> dict:
    """A run's config, parsed (model_info, modality_pairs, transcribed, ...)."""
    return dict(read_store(ref, lambda s: s.run(run_id))["config"] or {})


@st.cache_data(show_spinner=False, max_entries=64)
def schema_version(ref: StoreRef) -> int:
    return read_store(ref, lambda s: s.schema_version())


@st.cache_data(show_spinner=False, max_entries=64)
def components(ref: StoreRef, run_id: str) -> pd.DataFrame:
    return read_store(ref, lambda s: s.components(run_id))


@st.cache_data(show_spinner=False, max_entries=64)
def metric_names(ref: StoreRef, run_id: str) -> list[str]:
    return read_store(ref, lambda s: s.metric_names(run_id))


@st.cache_data(show_spinner=False, max_entries=64)
def metric_settings(ref: StoreRef, run_id: str) -> dict[str, list[tuple[str, int]]]:
    """Per metric, the distinct (params JSON, n_samples) its rows were computed with."""
    frame = read_store(ref, lambda s: s.metric_settings(run_id))
    return {str(metric): [(str(p), int(n)) for p, n in zip(group["params"], group["n_samples"],
                                                          strict=True)]
            for metric, group in frame.groupby("metric", sort=True)}


@st.cache_data(show_spinner="Loading metrics…", max_entries=256)
def metrics(ref: StoreRef, run_id: str, *, metric: str | None = None, pairing: str | None = None,
            layer: int | None = None, langs: tuple[str, ...] | None = None,
            components: tuple[str, str] | None = None, resamples: bool = False) -> pd.DataFrame:
    """Metric rows; ``components`` = (component_a, component_b) keeps one component pair, for models
    with several components of a modality; ``resamples`` adds each row's bootstrap values (for
    joint intervals of means over rows)."""
    rows = read_store(ref, lambda s: s.metrics(run_id, metric=metric, pairing=pairing, layer=layer,
                                               langs=list(langs) if langs is not None else None,
                                               with_resamples=resamples))
    if components is not None:
        rows = rows[(rows["component_a"] == components[0]) & (rows["component_b"] == components[1])]
    return rows.reset_index(drop=True)


@st.cache_data(show_spinner=False, max_entries=64)
def metric_layers(ref: StoreRef, run_id: str, metric: str, pairing: str) -> pd.DataFrame:
    """Distinct (component_a, component_b, layer_a) of one pairing: the layer slider's options."""
    rows = metrics(ref, run_id, metric=metric, pairing=pairing)
    return (rows[["component_a", "component_b", "layer_a"]].drop_duplicates()
            .sort_values(["component_a", "component_b", "layer_a"]).reset_index(drop=True))


def availability(ref: StoreRef, run_id: str, model: str, metric: str,
                 pairing: str) -> "availability_.Availability":
    """Whether ``metric`` can be drawn for ``pairing`` in a run, and why not (see
    ``dashboard.availability.pairing_availability``, which decides; this only gathers its inputs)."""
    stored = metric_layers(ref, run_id, metric, pairing)
    return availability_.pairing_availability(
        pairing, metric, components(ref, run_id), layers(ref, run_id),
        stored_pairs=list(zip(stored["component_a"], stored["component_b"], strict=True)),
        metric_names=metric_names(ref, run_id), model=model,
        modality_pairs=run_config(ref, run_id).get("modality_pairs"))


def speech_notice(ref: StoreRef, run_ids: Sequence[str], langs: Sequence[str] | None = None, *,
                  pairing: str | None = None) -> None:
    """Under a chart or verdict with speech results of ``run_ids``: say when that speech is
    synthetic (``dashboard.speech_source.speech_notice``), over the languages shown (``langs``,
    within each run's own). Nothing for runs that hear no speech or a pairing without speech."""
    if pairing is not None and "speech" not in pairing.split("-"):
        return
    shown: set[str] = set()
    for run_id in run_ids:
        if "speech" in availability_.modalities(components(ref, run_id)):
            own = run_languages(ref, run_id)["lang"]
            shown |= set(own) if len(own) else set(speech_voices(ref)["lang"])
    if langs is not None:
        shown &= set(langs)
    text = speech_source.speech_notice(speech_voices(ref), sorted(shown)) if shown else ""
    if text:
        st.caption(f":material/record_voice_over: {text}")


@st.cache_resource(show_spinner="Loading projections…", max_entries=8)
def run_projections(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """Every stored 2-D point of a run, with its item's language, sentence, modality and text:
    one query, which the map list and every map are cut from (one query per map took as long
    again on opening the Projection page). Shared: do not modify."""
    return read_store(ref, lambda s: s.projections(run_id))


@st.cache_data(show_spinner=False, max_entries=64)
def projection_maps(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """The run's stored 2-D maps (see ``projection_charts.projection_maps``)."""
    rows = run_projections(ref, run_id)
    return projection_charts.projection_maps(rows[["component", "layer", "method", "params"]],
                                             components(ref, run_id))


@st.cache_data(show_spinner="Loading projection…", max_entries=64)
def projection(ref: StoreRef, run_id: str, members: tuple[tuple[str, int], ...],
               method: str) -> pd.DataFrame:
    """The points of one map: every member (component, layer), with item lang/modality/text."""
    rows = run_projections(ref, run_id)
    frames = [rows[(rows["component"] == comp) & (rows["layer"] == layer)]
              for comp, layer in members]
    rows = pd.concat(frames, ignore_index=True)
    return rows[rows["method"] == method].reset_index(drop=True)


@st.cache_data(show_spinner=False, max_entries=16)
def verdicts(ref: StoreRef, run_id: str, metric: str) -> list:
    """Each finding under every stored metric and control with its headline verdict
    (``core.verdicts``); ``metric``'s single-metric finding rides along for the page's figures.
    The tables and headlines are the run's, evaluated once per run (``run_verdicts``); changing the
    sidebar metric recomputes only its own single-metric findings."""
    from dataclasses import replace  # noqa: PLC0415

    from core.findings import compute_findings, run_levels  # noqa: PLC0415 - Findings page only

    found = run_verdicts(ref, run_id)
    if all(f.detail_metric == metric for f in found):
        return found
    rows = metrics(ref, run_id, metric=metric, resamples=True)
    details = {f.id: f for f in compute_findings(
        rows, run_levels(languages(ref), run_languages(ref, run_id)), components(ref, run_id),
        metric=metric, n_permutations=run_config(ref, run_id).get("n_permutations"))}
    return [replace(f, detail=details.get(f.id), detail_metric=metric) for f in found]


@st.cache_data(show_spinner=False, max_entries=4)
def replication_groups(ref: StoreRef) -> tuple[list, dict[str, str]]:
    """The store's replication groups (``core.replication.replication_groups``: runs of one model
    on different corpora, a run's disjoint parts) and, for each run in none, why."""
    infos = [run_info(run, components(ref, run["run_id"]))
             for run in runs(ref, derived=True).to_dict("records")]
    groups = replication_groups_of(infos)
    return groups, unreplicated(infos, groups)


@st.cache_data(show_spinner="Evaluating every metric and control…", max_entries=32)
def run_verdicts(ref: StoreRef, run_id: str, langs: tuple[str, ...] | None = None) -> list:
    """One run's findings under every metric and control (``core.verdicts``; SVCCA's raw findings
    as the detail), on ``langs`` only when given (the languages a replication group shares):
    cached per run, not per sidebar metric, and shared by the Findings and Replication pages."""
    from core.findings import run_levels  # noqa: PLC0415 - Findings and Replication pages only
    from core.replication import evaluate_on  # noqa: PLC0415
    from core.verdicts import evaluate  # noqa: PLC0415

    rows = read_store(ref, lambda s: s.metrics(run_id, with_resamples=True))
    levels = run_levels(languages(ref), run_languages(ref, run_id))
    n_permutations = run_config(ref, run_id).get("n_permutations")
    if langs is None:
        return evaluate(rows, levels, components(ref, run_id), metric_variants(ref, run_id),
                        n_permutations=n_permutations)
    return evaluate_on(langs, rows, metric_variants(ref, run_id), levels, components(ref, run_id),
                       n_permutations=n_permutations)


@st.cache_data(show_spinner=False, max_entries=32)
def metric_variants(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """SVCCA at other k and length-matched values of a run (empty for older stores)."""
    return read_store(ref, lambda s: s.metric_variants(run_id))


@st.cache_data(show_spinner=False, max_entries=64)
def run_languages(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """The run's resource level per language and its source (empty for older stores)."""
    return read_store(ref, lambda s: s.run_languages(run_id))


@st.cache_data(show_spinner=False, max_entries=16)
def layer_matrix_sets(ref: StoreRef) -> pd.DataFrame:
    """The layer x layer matrices the store holds, one row per matrix (``Store.layer_matrix_sets``)."""
    return read_store(ref, lambda s: s.layer_matrix_sets())


@st.cache_data(show_spinner="Loading the matrix…", max_entries=256)
def layer_matrix(ref: StoreRef, run_a: str, run_b: str, component_a: str, component_b: str,
                 pairing: str, lang_a: str, lang_b: str, metric: str, *,
                 with_resamples: bool = False) -> pd.DataFrame:
    """The cells of one matrix and metric; bootstrap values only when a difference needs them."""
    return read_store(ref, lambda s: s.layer_matrices(
        run_a, run_b, component_a=component_a, component_b=component_b, pairing=pairing,
        metric=metric, langs=[lang_a], lang_b=lang_b, with_resamples=with_resamples))


# ------------------------------------------------------------------------- layer names

def component_layer_names(components_df: pd.DataFrame, component: str) -> tuple[str, ...]:
    row = components_df[components_df["component"] == component]
    if row.empty:
        return ()
    names = row.iloc[0]["layer_names"]
    return tuple(str(n) for n in names) if names is not None and len(names) else ()


def pairing_layer_names(ref: StoreRef, run_id: str, metric: str, pairing: str) -> tuple[str, ...]:
    """Layer names of side a's component in a pairing (the text side of text-speech)."""
    layers_df = metric_layers(ref, run_id, metric, pairing)
    if layers_df.empty:
        return ()
    return component_layer_names(components(ref, run_id), str(layers_df["component_a"].iloc[0]))


# ---------------------------------------------------------- Projection page: aligned maps (#22)
# The page reruns on every widget change and selection; its heavy parts are cached here whole (a
# map's traces, the small multiples) so a rerun only assembles them. The st.cache_resource
# entries are shared by every session and never changed after they are made: chart builders copy
# what they change, and st.plotly_chart serialises a copy of the figure.

@st.cache_resource(show_spinner="Aligning the layers' maps…", max_entries=16)
def aligned_projection(ref: StoreRef, run_id: str, components_label: str,
                       method: str = "umap") -> pd.DataFrame:
    """Every map of one component set of a run (``projection_maps``' ``components``), in layer
    order (``position``), each moved rigidly onto the one before (Procrustes, see
    ``core.map_alignment``), with the items' language name and level and each point's hover
    label and short label (made once here, not per layer and colouring). All languages: the
    alignment does not change with the sidebar's language choice. Shared: do not modify."""
    maps = projection_maps(ref, run_id)
    chosen = maps[(maps["components"] == components_label) & (maps["method"] == method)]
    frames = [projection(ref, run_id, tuple(members), method) for members in chosen["members"]]
    points = projection_charts.projection_points(projection_charts.aligned_map_frames(frames),
                                                 languages(ref))
    return points.join(projection_charts.item_labels(points))


@st.cache_resource(show_spinner=False, max_entries=16)
def aligned_bounds(ref: StoreRef, run_id: str, components_label: str) -> Bounds:
    """The extent of all the component set's aligned maps: the axes of its big map and of its
    small multiples, the same for every layer and language choice."""
    return projection_layers.row_bounds(aligned_projection(ref, run_id, components_label))


@st.cache_resource(show_spinner=False, max_entries=128)
def projection_layer_points(ref: StoreRef, run_id: str, components_label: str, position: int,
                            langs: tuple[str, ...]) -> pd.DataFrame:
    """The points of one aligned map (``position``) in ``langs``: what the page draws, filtered
    once per map and language set instead of on every rerun. Shared: do not modify."""
    points = aligned_projection(ref, run_id, components_label)
    return points[(points["position"] == position) & points["lang"].isin(langs)]


@st.cache_resource(show_spinner=False, max_entries=128)
def projection_sentence_previews(ref: StoreRef, run_id: str, components_label: str,
                                 position: int, langs: tuple[str, ...]) -> dict[int, str]:
    """The sentences of one map for the page's sentence picker
    (``projection_charts.sentence_previews``). Shared: do not modify."""
    return projection_charts.sentence_previews(
        projection_layer_points(ref, run_id, components_label, position, langs))


@st.cache_resource(show_spinner=False, max_entries=128)
def projection_map_base(ref: StoreRef, run_id: str, components_label: str, position: int,
                        colour_by: str, langs: tuple[str, ...]) -> dict:
    """The selection-independent traces of one aligned map (``projection_charts.map_base``) over
    ``langs``. Shared: do not modify."""
    shown = projection_layer_points(ref, run_id, components_label, position, langs)
    return projection_charts.map_base(shown, languages(ref), colour_by)


@st.cache_resource(show_spinner=False, max_entries=32)  # drawn ahead, in a thread: no spinner
def projection_layer_images(ref: StoreRef, run_id: str, components_label: str,
                            langs: tuple[str, ...]) -> tuple[str, ...]:
    """The small multiples' images of one component set: one grey PNG per map of the points of
    ``langs``, over ``aligned_bounds`` (all languages' points, so the frame stays put when
    languages change)."""
    points = aligned_projection(ref, run_id, components_label)
    return projection_layers.layer_images(points[points["lang"].isin(langs)],
                                          aligned_bounds(ref, run_id, components_label),
                                          n_maps=int(points["position"].max()) + 1)


def projection_layers_ahead(ref: StoreRef, run_id: str, components_labels: tuple[str, ...],
                            langs: tuple[str, ...], colour_by: str) -> threading.Thread:
    """Start preparing the small multiples of each component set, ``projection_layer_images``
    and ``projection_point_marks``, in a thread of its own (returned, started).

    Why: the page calls this when nothing is selected, so that the 14 images and the marks'
    arrays (about 0.15 s) are made while the user looks for something to select, not in the
    rerun of the first selection, which finds them cached, or waits for the rest (Streamlit's
    cache locks each key while it is computed). Failures are left to that rerun, which
    reports them."""
    def prepare() -> None:
        try:
            for label in components_labels:
                projection_layer_images(ref, run_id, label, langs)
                projection_point_marks(ref, run_id, label, langs, colour_by)
        except Exception:  # noqa: BLE001 - the rerun that needs them makes them again
            return

    ahead = threading.Thread(target=prepare, daemon=True, name="projection-layers")
    add_script_run_ctx(ahead, get_script_run_ctx())  # Streamlit's caches read the session
    ahead.start()
    return ahead


@st.cache_resource(show_spinner=False, max_entries=16)
def projection_point_marks(ref: StoreRef, run_id: str, components_label: str,
                           langs: tuple[str, ...], colour_by: str) -> dict:
    """The arrays the small multiples' markers are picked from (``projection_layers.point_marks``)
    for every point of ``langs`` in one component set's maps. Shared: do not modify."""
    points = aligned_projection(ref, run_id, components_label)
    return projection_layers.point_marks(points[points["lang"].isin(langs)], languages(ref),
                                         colour_by)


@st.cache_resource(show_spinner=False, max_entries=32)
def projection_layers_figure(ref: StoreRef, run_id: str, components_labels: tuple[str, ...],
                             colour_by: str, langs: tuple[str, ...], selected: bytes
                             ) -> go.Figure:
    """The small multiples of the selection (``projection_selection.selection_key``) in every
    map of each component set (a plotly Figure, see ``projection_layers.layers_figure``).
    Shared: do not modify."""
    maps = projection_maps(ref, run_id)
    rows = [projection_layers.LayerRow(label, aligned_projection(ref, run_id, label),
                                       tuple(maps[maps["components"] == label]["label"]),
                                       projection_layer_images(ref, run_id, label, langs),
                                       aligned_bounds(ref, run_id, label))
            for label in components_labels]
    return projection_layers.layers_figure(
        rows, languages(ref), colour_by=colour_by,
        selected=projection_selection.key_ids(selected),
        title="The selection in every layer (aligned maps)",
        marks=[projection_point_marks(ref, run_id, label, langs, colour_by)
               for label in components_labels])
