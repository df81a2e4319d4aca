"""A store's results in a notebook: pandas DataFrames and numpy arrays, no SQL.

``open_lens(path)`` opens a store read-only and returns a ``Lens``; every read goes through the same
``core.store.Store`` methods the dashboard's cached queries call (``dashboard/state.py``), and the
findings through the same ``core.verdicts.evaluate`` as the Findings page and ``precompute report``,
so a notebook sees exactly the numbers the dashboard shows. A worked example: docs/api.md.

Names are checked before anything is read: an unknown run, component, layer, language, metric or
pairing raises ``LensError`` listing what the store holds; a path without a store raises
``FileNotFoundError`` listing the stores beside it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import findings as findings_
from core import verdicts as verdicts_
from core.replication import is_derived
from core.store import Store
from core.store.tables import PAIRINGS

#: Columns of ``Lens.verdict_table``: the finding, its headline, then one metric x control cell.
VERDICT_TABLE_COLUMNS = ["finding", "title", "headline", *verdicts_.TABLE_COLUMNS]


class LensError(LookupError):
    """A name the store does not hold (run, component, layer, language, metric, pairing); the
    message lists those it does."""


def _choices(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values) if len(values) else "none"


def open_lens(path: str | os.PathLike) -> Lens:
    """Open the store at ``path`` read-only (the bundled one: ``data/crossmodal_lens.duckdb``).

    Use it as a context manager, or call ``close()``: while it is open, DuckDB refuses to open
    the same file writable in the same process (``Store.open(path, read_only=False)``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        folder = path.parent if path.parent.is_dir() else Path.cwd()
        stores = sorted(p.name for p in folder.glob("*.duckdb"))
        raise FileNotFoundError(
            f"no store at {path}; stores in {folder.resolve()}: {_choices(stores)} (the bundled "
            "one is data/crossmodal_lens.duckdb in the repository; build one with `python -m "
            f"precompute build --out {path}`)")
    return Lens(Store.open(path, read_only=True))


class Lens:
    """One store, read-only: runs, languages, items, metrics, findings, layer x layer matrices and
    pooled activations."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._verdicts: dict[tuple[str, str], list[verdicts_.FindingVerdict]] = {}

    @property
    def path(self) -> Path:
        return Path(self.store.path)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Lens:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lens({str(self.path)!r}: runs {_choices(list(self.store.runs().run_id))})"

    # ------------------------------------------------------------------ what the store holds
    def runs(self) -> pd.DataFrame:
        """run_id, created_at, model, status (and config / versions as JSON text), oldest first;
        ``run(run_id)`` parses a run's config. Runs derived by ``precompute halves`` (parts of
        another run's sentences, for the Replication page) are here too; a model name given as
        ``run`` elsewhere means the model's one run that is not derived."""
        return self.store.runs()

    def run(self, run: str) -> dict[str, Any]:
        """One run: run_id, model, status, ``config`` (what it was built with: corpus, languages,
        components, n_permutations, ...) and ``versions`` as dicts."""
        return self.store.run(self._run_id(run))

    def languages(self, run: str | None = None) -> pd.DataFrame:
        """The store's languages (code, name, espeak voice, resource level from Whisper's training
        hours); with ``run``, that run's languages and the resource levels its findings use."""
        if run is None:
            return self.store.languages()
        run_id = self._run_id(run)
        return findings_.run_levels(self.store.languages(), self.store.run_languages(run_id))

    def components(self, run: str) -> pd.DataFrame:
        """A run's components: modality, n_layers, dim, layer names, representation space."""
        return self.store.components(self._run_id(run))

    def layers(self, run: str) -> pd.DataFrame:
        """A run's layer points: component, layer, name, stage, depth (relative, 0..1), space."""
        return self.store.layers(self._run_id(run))

    def items(self, modality: str | None = None, *, run: str | None = None,
              langs: str | Sequence[str] | None = None, all_voices: bool = False) -> pd.DataFrame:
        """Sentences as text and speech items (item_id, sentence_id, lang, modality, text,
        duration_s, voice); with ``run``, that run's token counts, transcripts and CER. A second
        voice's speech (a voice-change reference) only with ``all_voices``."""
        if modality is not None and modality not in ("text", "speech"):
            raise LensError(f"no modality {modality!r}; modalities: text, speech")
        run_id = self._run_id(run) if run is not None else None
        frame = self.store.items(modality, run_id=run_id, all_voices=all_voices)
        if langs is not None:
            chosen = self._langs(langs, sorted(set(self.store.languages().lang)), "the store")
            frame = frame[frame.lang.isin(chosen)].reset_index(drop=True)
        return frame

    def metric_names(self, run: str) -> list[str]:
        return self.store.metric_names(self._run_id(run))

    # ------------------------------------------------------------------ metrics
    def metrics(self, run: str, *, metric: str | None = None, pairing: str | None = None,
                component: str | tuple[str, str] | None = None, layer: int | None = None,
                langs: str | Sequence[str] | None = None, resamples: bool = False) -> pd.DataFrame:
        """Metric rows of a run: per pair of (component, layer, language) sides the value, its
        shuffled-pairs baseline (mean, std), 95% CI, length baseline, length-residualised value,
        n_samples, each side's stage and path depth.

        ``component``: rows with that component on either side, or a (component_a, component_b)
        pair; ``layer``: side a's layer (for text-speech, the text side's); ``langs``: rows whose
        two languages are both among them; ``resamples``: each row's bootstrap values (decode them with
        ``core.store.vectors.resample_matrix``)."""
        run_id = self._run_id(run)
        if metric is not None and metric not in (names := self.store.metric_names(run_id)):
            raise LensError(f"run {run_id} has no metric {metric!r}; metrics: {_choices(names)}")
        if pairing is not None and pairing not in PAIRINGS:
            raise LensError(f"no pairing {pairing!r}; pairings: {_choices(PAIRINGS)}")
        components = list(self.store.components(run_id).component)
        pair = (component,) if isinstance(component, str) else tuple(component or ())
        for name in pair:
            if name not in components:
                raise LensError(f"run {run_id} has no component {name!r}; components: "
                                f"{_choices(components)}")
        if layer is not None:
            self._check_layer(run_id, pair[0] if len(pair) == 2 else None, layer)
        chosen = (self._langs(langs, self._run_langs(run_id), f"run {run_id}")
                  if langs is not None else None)
        rows = self.store.metrics(run_id, metric=metric, pairing=pairing, layer=layer,
                                  langs=chosen, with_resamples=resamples)
        if len(pair) == 1:
            rows = rows[(rows.component_a == pair[0]) | (rows.component_b == pair[0])]
        elif len(pair) == 2:
            rows = rows[(rows.component_a == pair[0]) & (rows.component_b == pair[1])]
        return rows.reset_index(drop=True)

    def metric_variants(self, run: str, variant: str | None = None) -> pd.DataFrame:
        """SVCCA at k = 2..64 (``svcca_k``) and on length-matched sentences (``length_matched``)
        for the pairs the findings read, with their shuffled baselines."""
        if variant is not None and variant not in ("svcca_k", "length_matched"):
            raise LensError(f"no variant {variant!r}; variants: svcca_k, length_matched")
        return self.store.metric_variants(self._run_id(run), variant)

    # ------------------------------------------------------------------ findings
    def verdicts(self, run: str, metric: str = "svcca") -> list[verdicts_.FindingVerdict]:
        """The study's four findings under every metric and control the run has, each with its
        headline (``core.verdicts.evaluate``: what the Findings page and ``precompute report``
        show); ``metric``'s single-metric finding rides along as each verdict's ``detail``. Kept
        per (run, metric) while the Lens is open: the file is read-only, and they take seconds."""
        key = (self._run_id(run), metric)
        if metric not in (names := self.store.metric_names(key[0])):
            raise LensError(f"run {key[0]} has no metric {metric!r}; metrics: {_choices(names)}")
        if key not in self._verdicts:
            self._verdicts[key] = run_verdicts(self.store, *key)
        return self._verdicts[key]

    def findings(self, run: str, metric: str = "svcca") -> pd.DataFrame:
        """One row per finding: finding, title, headline (holds / does not hold / mixed / not
        enough data / not applicable), reason, and ``metric``'s own summary."""
        return pd.DataFrame([
            {"finding": v.id, "title": v.title, "headline": v.headline, "reason": v.reason,
             "summary": v.detail.summary if v.detail is not None else ""}
            for v in self.verdicts(run, metric)])

    def verdict_table(self, run: str) -> pd.DataFrame:
        """Every finding's metric x control cells in one frame (``VERDICT_TABLE_COLUMNS``): the
        effect (chance-corrected), its 95% interval over sentence resamples, the cell's verdict."""
        frames = [verdict.cells.assign(finding=verdict.id, title=verdict.title,
                                       headline=verdict.headline)
                  for verdict in self.verdicts(run)]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=VERDICT_TABLE_COLUMNS)
        return pd.concat(frames, ignore_index=True)[VERDICT_TABLE_COLUMNS]

    # ------------------------------------------------------------------ pooled activations
    def activations(self, run: str, component: str, layer: int,
                    langs: str | Sequence[str] | None = None, *,
                    voice_rank: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
        """A run's pooled states of one component and layer: the items (one row each, ordered by
        lang, then sentence_id) and a float32 (n_items, dim) array, decoded from the store's int8
        (per-vector scale) or float16 where it was stored so. ``voice_rank`` 1: the second voice's
        speech (a voice-change reference)."""
        run_id = self._run_id(run)
        components = self.store.components(run_id)
        if component not in set(components.component):
            raise LensError(f"run {run_id} has no component {component!r}; components: "
                            f"{_choices(list(components.component))}")
        self._check_layer(run_id, component, layer)
        if not self.store.run(run_id)["config"].get("store_activations", True):
            raise LensError(f"run {run_id} was built with --no-store-activations: it holds metrics "
                            "and maps but no pooled states")
        chosen = (self._langs(langs, self._run_langs(run_id), f"run {run_id}")
                  if langs is not None else None)
        items, vectors = self.store.activations(run_id, component, int(layer), chosen,
                                                voice_rank=voice_rank)
        if items.empty:
            raise LensError(f"run {run_id} holds no {component} states at layer {layer} for "
                            f"{chosen or 'any language'} (voice_rank {voice_rank})")
        return items, vectors

    def projections(self, run: str, component: str | None = None,
                    layer: int | None = None) -> pd.DataFrame:
        """The stored 2-D UMAP maps: per item and point (component, layer) its x, y, lang,
        sentence_id, modality and text; a joint text + speech map's points share its params."""
        run_id = self._run_id(run)
        names = list(self.store.components(run_id).component)
        if component is not None and component not in names:
            raise LensError(f"run {run_id} has no component {component!r}; components: "
                            f"{_choices(names)}")
        if layer is not None:
            self._check_layer(run_id, component, layer)
        return self.store.projections(run_id, component, layer)

    # ------------------------------------------------------------------ layer x layer matrices
    def layer_matrix_sets(self, run: str | None = None) -> pd.DataFrame:
        """The layer x layer matrices the store holds (written by ``python -m precompute
        matrices``): one row per matrix key (run_a, run_b, component_a, component_b, pairing,
        lang_a, lang_b; lang_a 'mean' for the mean over languages) with its metrics and layer
        counts; ``run`` keeps those with that run on either side."""
        return self.store.layer_matrix_sets(self._run_id(run) if run is not None else None)

    def layer_matrices(self, run_a: str, run_b: str | None = None, *,
                       component_a: str | None = None, component_b: str | None = None,
                       pairing: str | None = None, metric: str | None = None,
                       lang: str | None = None, resamples: bool = False) -> pd.DataFrame:
        """Cells of the layer x layer matrices between ``run_a`` and ``run_b`` (default: run_a
        with itself): per (layer_a, layer_b) the value, shuffled baseline, 95% interval and the
        calibrated best match of the row and column (``row_best``/``row_p``: is layer_b the best
        match of layer_a, and its p-value against the permutation null of the row maximum; the
        same for columns). ``lang`` picks side a's language ('mean': the mean over languages).
        ``resamples``: the bootstrap values too (blobs: ``core.store.vectors.decode_resamples``),
        for differences of two matrices of one resampling."""
        run_a = self._run_id(run_a)
        run_b = self._run_id(run_b) if run_b is not None else run_a
        sets = self.store.layer_matrix_sets(run_a)
        sets = sets[(sets.run_a == run_a) & (sets.run_b == run_b)]
        if sets.empty:
            raise LensError(f"no layer x layer matrices between {run_a} and {run_b}; run `python "
                            f"-m precompute matrices --store {self.path} --run {run_a}` (with "
                            f"--against {run_b} for two runs). Held: "
                            f"{_choices(sorted(set(self.store.layer_matrix_sets().run_a)))}")
        for name, value, held in (
                ("component_a", component_a, sets.component_a), ("component_b", component_b,
                                                                  sets.component_b),
                ("pairing", pairing, sets.pairing), ("lang", lang, sets.lang_a),
                ("metric", metric, [m for ms in sets.metrics for m in ms])):
            if value is not None and value not in set(held):
                raise LensError(f"the matrices between {run_a} and {run_b} have no {name} "
                                f"{value!r}; {name}: {_choices(sorted(set(held)))}")
        return self.store.layer_matrices(
            run_a, run_b, component_a=component_a, component_b=component_b, pairing=pairing,
            metric=metric, langs=[lang] if lang is not None else None,
            with_resamples=resamples).reset_index(drop=True)

    # ------------------------------------------------------------------ checks
    def _run_id(self, run: str) -> str:
        run_ids = list(self.store.runs().run_id)
        if run in run_ids:
            return run
        models = self.store.runs()
        # a model name that names one run; the parts `precompute halves` derives from a run share
        # its model but are not what the name means
        by_model = [r.run_id for r in models.itertuples()
                    if r.model == run and not is_derived(r.config)]
        if len(by_model) == 1:
            return by_model[0]
        listed = ", ".join(f"{r.run_id} ({r.model})" for r in models.itertuples()) or "none"
        if len(by_model) > 1:
            raise LensError(f"model {run!r} has {len(by_model)} runs in {self.path}; name one: "
                            f"{_choices(by_model)}")
        raise LensError(f"no run {run!r} in {self.path}; runs: {listed}")

    def _run_langs(self, run_id: str) -> list[str]:
        own = self.store.run_languages(run_id)
        if len(own):
            return list(own.lang)
        return list(self.store.run(run_id)["config"].get("run_langs")
                    or self.store.languages().lang)

    def _langs(self, langs: str | Sequence[str], known: Sequence[str], where: str) -> list[str]:
        chosen = [langs] if isinstance(langs, str) else list(langs)
        unknown = [lang for lang in chosen if lang not in known]
        if unknown:
            raise LensError(f"{where} has no language {', '.join(map(repr, unknown))} (FLORES-200 "
                            f"codes); languages: {_choices(list(known))}")
        return chosen

    def _check_layer(self, run_id: str, component: str | None, layer: int) -> None:
        components = self.store.components(run_id)
        if component is not None:
            components = components[components.component == component]
        counts = {str(r.component): int(r.n_layers) for r in components.itertuples()}
        if not any(0 <= int(layer) < n for n in counts.values()):
            ranges = ", ".join(f"{name}: 0..{n - 1}" for name, n in counts.items())
            raise LensError(f"run {run_id} has no layer {layer} ({ranges})")


def run_verdicts(store: Store, run_id: str,
                 metric: str = "svcca") -> list[verdicts_.FindingVerdict]:
    """``core.verdicts.evaluate`` for one run of an open store, with the inputs the dashboard and
    ``precompute report`` give it: every metric row with its bootstrap values, the run's resource
    levels, components, metric variants and number of permutations."""
    return verdicts_.evaluate(
        store.metrics(run_id, with_resamples=True),
        findings_.run_levels(store.languages(), store.run_languages(run_id)),
        store.components(run_id), store.metric_variants(run_id), detail_metric=metric,
        n_permutations=store.run(run_id)["config"].get("n_permutations"))
