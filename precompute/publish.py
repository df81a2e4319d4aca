"""Stage 3 of a build: publishing a run's parts into the store, and staged stores.

Under ``<out>.lock`` the store is copied to ``<out>.tmp-<pid>`` (or created), the run is added from
its parts in one transaction, and the copy replaces ``<out>`` atomically (readers keep the old file
until they reopen; the dashboard notices the new mtime); then the run's parts are removed. So
``<out>`` changes only by an atomic rename and is never half-written. ``precompute metrics``
changes a store the same way (``staged_store``; ``core.store.copy_store_file`` copies one).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from core.store import Store, compact_copy, copy_store_file, publish_atomically
from core.store.files import wal_path
from precompute.checks import complete_runs
from precompute.config import BuildError, component_from_json
from precompute.measure_inputs import part_items, voice_ranks
from precompute.staging import Workspace, remove_stale_temp_files, store_lock

log = logging.getLogger("precompute")


def publish_job(out: Path, workspace: Workspace, plan: dict[str, Any]) -> str:
    """Copy the store (or start one), add the run from its parts in one transaction, and publish
    the copy atomically, all under the store's lock; then drop the run's parts."""
    run_id = plan["run_id"]
    with store_lock(out):
        remove_stale_temp_files(out)
        if run_id in complete_runs(out):
            log.info("run %s is already complete in %s: nothing to do", run_id, out)
            workspace.remove_job(run_id)
            return "complete"
        with staged_store(out) as tmp:
            if out.exists():
                copy_store_file(out, tmp)
                store = Store.open(tmp, read_only=False)
            else:
                store = Store.create(tmp)
            with store, store.transaction():
                add_run_from_parts(store, workspace, plan)
        workspace.remove_job(run_id)
    log.info("published %s (run %s added)", out, run_id)
    return "added"


def item_sources(items: pd.DataFrame, ids: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The speech items' sources (``item_sources``) from the items parts; none from parts
    written before they carried them (a resumed older build)."""
    if "waveform_sha256" not in items.columns:
        return pd.DataFrame(columns=["item_id", "path", "file_sha256", "waveform_sha256"])
    speech = items[(items["modality"] == "speech") & items["waveform_sha256"].notna()]
    frame = speech.merge(ids, on=key, validate="one_to_one")
    return frame.rename(columns={"source_path": "path"})[
        ["item_id", "path", "file_sha256", "waveform_sha256"]]


def add_run_from_parts(store: Store, workspace: Workspace, plan: dict[str, Any]) -> None:
    """The run, its items (those the store lacks), components, languages, token counts,
    transcripts, activations, metrics, variants and maps, from its parts into ``store``."""
    from core import languages

    run_id = plan["run_id"]
    langs = list(plan["run_langs"])
    components = [component_from_json(c) for c in plan["components"]]
    items = part_items(workspace, plan)

    known = set(store.languages().lang)
    new_langs = [lang for lang in langs if lang not in known]
    if new_langs:
        store.add_languages(languages.languages_frame(new_langs))
    existing = store.items(all_voices=True)
    key = ["lang", "modality", "sentence_id", "voice_rank"]
    both = items.merge(existing[[*key, "item_id", "text", "voice"]], on=key, how="left",
                       suffixes=("", "_stored"))
    clash = both[both.item_id.notna() & ((both.text != both.text_stored)
                                         | ((both.modality == "speech")
                                            & (both.voice != both.voice_stored)))]
    if not clash.empty:
        first = clash.iloc[0]
        raise BuildError(
            f"{store.path.name}: the store already holds other {first.modality} for "
            f"{first.lang} sentence {first.sentence_id} ({first.text_stored!r} by "
            f"{first.voice_stored or 'text'}) than this run's ({first.text!r}); a store holds one "
            "corpus: build this one into another --out")
    fresh = both[both.item_id.isna()]
    if not fresh.empty:
        store.add_items(fresh[["sentence_id", "lang", "modality", "text", "duration_s", "voice",
                               "voice_rank"]])
    ids = store.items(all_voices=True)[[*key, "item_id"]]
    store.set_item_sources(item_sources(items, ids, key))

    store.add_run(run_id, plan["model"], plan["run_config"], plan["versions"])
    store.add_components(run_id, components)
    levels = plan.get("resource_levels")
    store.set_run_languages(run_id, pd.DataFrame(levels) if levels else
                            languages.proxy_levels(langs, plan["model"]))
    for kind, columns in (("tokens", ["n_tokens"]), ("transcripts", ["transcript", "cer"])):
        parts = [workspace.read_part(run_id, kind, lang) for lang in langs
                 if workspace.has(run_id, kind, lang)]
        if parts:
            frame = pd.concat(parts, ignore_index=True)
            frame["voice_rank"] = voice_ranks(frame)
            frame = frame.merge(ids, on=key, validate="one_to_one")
            store.set_run_items(run_id, frame[["item_id", *columns]])
    if plan["run_config"].get("store_activations", True):
        store.add_activation_parts(run_id, [workspace.part(run_id, "activations", c.name, lang)
                                            for c in components for lang in langs])
    for path in sorted((workspace.job_dir(run_id) / "metrics").glob("*.parquet")):
        frame = workspace.read_part(run_id, "metrics", path.stem)
        if not frame.empty:
            store.add_metrics(run_id, frame)
    variant_dir = workspace.job_dir(run_id) / "variants"
    for path in sorted(variant_dir.glob("*.parquet")) if variant_dir.is_dir() else []:
        frame = workspace.read_part(run_id, "variants", path.stem)
        if not frame.empty:
            store.add_metric_variants(run_id, frame)
    projection_dir = workspace.job_dir(run_id) / "projections"
    for path in sorted(projection_dir.glob("*.parquet")) if projection_dir.is_dir() else []:
        frame = workspace.read_part(run_id, "projections", path.stem)
        if not frame.empty:
            frame["voice_rank"] = voice_ranks(frame)
            store.add_projections(run_id, frame.merge(ids, on=key, validate="many_to_one"))
    store.finish_run(run_id)


@contextmanager
def staged_store(out: Path, *, compact: bool = False) -> Iterator[Path]:
    """A temp path beside ``out`` to write a store at; published over ``out`` atomically when the
    block ends normally (every Store on it closed by then), removed when it raises (also on Ctrl-C
    or SIGTERM, which the CLI turns into exceptions), so ``out`` is never half-written.

    ``compact`` publishes a fresh copy instead (DuckDB does not reuse the space of deleted rows).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    compacted = tmp.with_name(tmp.name + ".compact")
    _remove_store_files(tmp)
    _remove_store_files(compacted)
    try:
        yield tmp
        if compact:
            compact_copy(tmp, compacted)
            publish_atomically(compacted, out)
        else:
            publish_atomically(tmp, out)
    finally:
        _remove_store_files(tmp)
        _remove_store_files(compacted)


def temp_path_for(out: Path) -> Path:
    """Where this process stages a new version of the store ``out``."""
    return out.with_name(f"{out.name}.tmp-{os.getpid()}")


def _remove_store_files(path: Path) -> None:
    for leftover in (path, wal_path(path)):
        leftover.unlink(missing_ok=True)
