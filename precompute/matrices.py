"""``precompute matrices``: layer x layer matrices of a run, or between two runs, into the store.

A run's matrices compare every layer of one component with every layer of another on the same
sentences: text vs speech of the same sentence per language (the run's modality pairs), and one
component against itself across languages (each language with a pivot, or every language pair).
Between two runs (``--against``), every component of one with every component of the other, per
language of both. Each language (pair) is one matrix; their mean is stored as lang 'mean'.

Where the activations come from: the store's, or, for a text-only run built without them (the
bundled multilingual-e5-small run; its 4,000 texts take about a minute), the run's model again on
the store's texts, rounded to the run's activation dtype as the build stored and measured them. A
speech run without activations is refused (re-synthesising and re-encoding its speech is a build).

Computed from a read-only store first; then, under the store's lock, a copy gets the rows (each
(run_a, run_b) set replaced whole) and is published atomically, as ``precompute metrics`` does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from core.metrics.grid import MetricSpec
from core.metrics.layer_matrix import (BETWEEN_SPACES, DEFAULT_MATRIX_PERMUTATIONS, WITHIN_SPACE,
                                       MatrixRequest, matrices_cells, mean_cells,
                                       with_best_matches)
from core.store import Store, copy_store_file
from precompute.config import BuildError
from precompute.publish import staged_store
from precompute.staging import store_lock

log = logging.getLogger("precompute")

MEAN = "mean"  # lang_a / lang_b of a matrix averaged over languages (or language pairs)


@dataclass(frozen=True)
class MatrixOptions:
    """What to compute. ``pivot`` None: every language pair for the cross-language matrices."""

    pivot: str | None = "eng_Latn"
    n_permutations: int = DEFAULT_MATRIX_PERMUTATIONS
    alpha: float = 0.05
    per_language_resamples: bool = True
    #: pairings whose per-language matrices are stored (None: every pairing); the others keep only
    #: their mean (a smaller store: the bundled one keeps text-speech per language)
    per_language: tuple[str, ...] | None = None
    langs: tuple[str, ...] | None = None
    device: str | None = None
    batch_size: int = 16
    #: CPU threads for torch: small batched eigendecompositions (SVCCA's bootstrap directions) ran
    #: 0.5 s on one thread and 13 s on two on the shared 2-core machine (threads contend)
    threads: int = 1
    #: languages whose matrices share one grid (memory grows with the layer sides a grid holds)
    languages_per_grid: int = 3


@dataclass(frozen=True)
class MatrixJob:
    """One matrix set: two components and the language pairs whose matrices it averages."""

    component_a: str
    component_b: str
    pairing: str
    lang_pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MatricesDone:
    run_a: str
    run_b: str
    n_rows: int
    n_matrices: int


# ------------------------------------------------------------------------------- planning


def run_langs(store: Store, run_id: str, only: Sequence[str] | None) -> list[str]:
    """The run's languages in its corpus order, narrowed to ``only``."""
    config = store.run(run_id)["config"]
    langs = config.get("run_langs") or config.get("corpus_langs") or store.languages().lang.tolist()
    return [lang for lang in langs if only is None or lang in only]


def plan_within(components: pd.DataFrame, modality_pairs: Sequence[Sequence[str]],
                langs: Sequence[str], pivot: str | None) -> list[MatrixJob]:
    """A run's matrix sets: each modality pair per language, each component across languages."""
    jobs = [MatrixJob(text, speech, "text-speech", tuple((lang, lang) for lang in langs))
            for text, speech in modality_pairs]
    if pivot is not None and pivot not in langs:
        raise BuildError(f"pivot language {pivot!r} is not among the run's languages "
                         f"({', '.join(langs)}); pass --pivot LANG or --pivot all")
    if pivot is None:
        across = tuple((a, b) for i, a in enumerate(langs) for b in langs[i + 1:])
    else:
        across = tuple((pivot, lang) for lang in langs if lang != pivot)
    for row in components.itertuples():
        if across:
            jobs.append(MatrixJob(row.component, row.component, f"{row.modality}-{row.modality}",
                                  across))
    return jobs


def plan_between(components_a: pd.DataFrame, components_b: pd.DataFrame,
                 langs: Sequence[str]) -> list[MatrixJob]:
    """Two runs' matrix sets: every component of a with every component of b, per language."""
    return [MatrixJob(a.component, b.component, f"{a.modality}-{b.modality}",
                      tuple((lang, lang) for lang in langs))
            for a in components_a.itertuples() for b in components_b.itertuples()]


# ------------------------------------------------------------------------------- activations


class LayerSource:
    """A run's pooled states per (component, lang), read from the store or extracted again."""

    def __init__(self, store: Store, run_id: str, options: MatrixOptions,
                 load_model: Callable[[str, str | None], object] | None = None):
        self.store, self.run_id, self.options = store, run_id, options
        self.components = store.components(run_id).set_index("component")
        self._stored = {c: has_activations(store, run_id, c) for c in self.components.index}
        self._extracted: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
        self._cache: dict[tuple[str, str], tuple[np.ndarray, list[np.ndarray]]] = {}
        self._load_model = load_model

    def check(self) -> None:
        """Refuse before any work a speech component without stored activations."""
        for component, stored in self._stored.items():
            if not stored and self.components.loc[component, "modality"] != "text":
                raise BuildError(
                    f"run {self.run_id!r} stored no activations for its speech component "
                    f"{component!r}; its matrices need them: rebuild the run with stored "
                    "activations (`python -m precompute build`)")

    def layers(self, component: str, lang: str) -> tuple[np.ndarray, list[np.ndarray]]:
        """(sentence_ids, [per layer (n_sentences, dim)]) of one language, rows by sentence_id."""
        key = (component, lang)
        if key not in self._cache:
            n_layers = int(self.components.loc[component, "n_layers"])
            if self._stored[component]:
                arrays, ids = [], None
                for layer in range(n_layers):
                    items, vectors = self.store.activations(self.run_id, component, layer, [lang])
                    ids = items.sentence_id.to_numpy()
                    arrays.append(vectors)
            else:
                items, states = self._extract(component)
                rows = (items.lang == lang).to_numpy()
                ids = items.sentence_id.to_numpy()[rows]
                arrays = [states[rows, layer] for layer in range(n_layers)]
            self._cache[key] = (ids, arrays)
        return self._cache[key]

    def _extract(self, component: str) -> tuple[pd.DataFrame, np.ndarray]:
        """The text component's states for the run's texts, rounded as the build stored them."""
        if component not in self._extracted:
            from core.store.vectors import decode_vectors, encode_vectors
            from precompute.extract import component_states

            config = self.store.run(self.run_id)["config"]
            langs = run_langs(self.store, self.run_id, self.options.langs)
            items = self.store.items("text")
            items = items[items.lang.isin(langs)].sort_values(["lang", "sentence_id"])
            items = items.reset_index(drop=True)
            log.info("re-extracting %s %s for %d texts (the run stored no activations)",
                     self.run_id, component, len(items))
            loader = self._load_model or _load_model
            adapter = loader(config.get("model", self.run_id), self.options.device)
            comp = adapter.component(component)
            extraction = component_states(adapter, comp, items, _no_waveform,
                                          self.options.batch_size,
                                          pooling=config.get("pooling", "mean"))
            states = np.asarray(extraction.pooled, dtype=np.float32)
            dtype = config.get("activation_dtype", "float16")
            n, n_layers, dim = states.shape
            flat = decode_vectors(encode_vectors(states.reshape(n * n_layers, dim), dtype), dtype, dim)
            self._extracted[component] = (items, flat.reshape(n, n_layers, dim))
        return self._extracted[component]


def _no_waveform(_row) -> np.ndarray:
    raise BuildError("re-extraction reads text components only")


def _load_model(name: str, device: str | None):
    from core.models.registry import load_model

    return load_model(name, device=device)


def aligned_ids(source_a: LayerSource, component_a: str, lang_a: str, source_b: LayerSource,
                component_b: str, lang_b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sentence ids both sides hold (sorted) and each side's rows for them."""
    ids_a, _ = source_a.layers(component_a, lang_a)
    ids_b, _ = source_b.layers(component_b, lang_b)
    common = np.intersect1d(ids_a, ids_b)
    return common, np.searchsorted(ids_a, common), np.searchsorted(ids_b, common)


# ------------------------------------------------------------------------------- computing


def shared_mask(layers_a: pd.DataFrame, layers_b: pd.DataFrame, same_run: bool) -> np.ndarray:
    """(n_a, n_b): whether layer i of a and layer j of b are points of one representation space."""
    if not same_run:
        return np.zeros((len(layers_a), len(layers_b)), dtype=bool)
    space_a = layers_a.sort_values("layer").space.to_numpy(dtype=object)
    space_b = layers_b.sort_values("layer").space.to_numpy(dtype=object)
    return np.array([[a is not None and a == b for b in space_b] for a in space_a], dtype=bool)


def side_keys(sides: dict, side: tuple[LayerSource, str, str],
              other: tuple[LayerSource, str, str]) -> tuple:
    """Keys of one side's layers restricted to the sentences the other side holds too, adding
    the arrays to ``sides`` (once per key: the same layer, language and sentences)."""
    (source, component, lang), (other_source, other_component, other_lang) = side, other
    _, layers = source.layers(component, lang)
    common, rows, _ = aligned_ids(source, component, lang, other_source, other_component,
                                  other_lang)
    subset = hashlib.sha1(common.tobytes()).hexdigest()[:12]
    keys = tuple((source.run_id, component, lang, layer, subset) for layer in range(len(layers)))
    for key, array in zip(keys, layers):
        sides.setdefault(key, array[rows])
    return keys


@dataclass
class _Planned:
    """The matrices of one (run_a, run_b) job, in request order."""

    run_a: str
    run_b: str
    job: MatrixJob
    requests: list[tuple[int, str, str]]  # (request index, lang_a, lang_b)


def job_rows(job: MatrixJob, per_lang: list[pd.DataFrame], settings: dict,
             options: MatrixOptions) -> pd.DataFrame:
    """A job's language (pair) matrices with their best matches, and their mean."""
    frames = [with_best_matches(cells, alpha=options.alpha).assign(n_langs=1) for cells in per_lang]
    sizes = {int(cells.n_samples.iloc[0]) for cells in per_lang if len(cells)}
    if len(per_lang) > 1 and len(sizes) == 1:  # a mean needs the same shuffles in every matrix
        mean = mean_cells(pd.concat(per_lang, ignore_index=True))
        mean = mean.rename(columns={"n_matrices": "n_langs"}).assign(lang_a=MEAN, lang_b=MEAN)
        frames.append(with_best_matches(mean, alpha=options.alpha))
    elif len(per_lang) > 1:
        log.warning("%s %s vs %s: languages hold different numbers of sentences %s; no mean matrix",
                    job.pairing, job.component_a, job.component_b, sorted(sizes))
    keep_languages = options.per_language is None or job.pairing in options.per_language
    if not keep_languages and len(frames) > len(per_lang):
        frames = frames[len(per_lang):]  # the mean only
    out = pd.concat(frames, ignore_index=True).drop(columns=["null"])
    if not options.per_language_resamples:
        out.loc[out.lang_a != MEAN, "resamples"] = None
    return out.assign(component_a=job.component_a, component_b=job.component_b,
                      pairing=job.pairing, alpha=options.alpha,
                      n_permutations=options.n_permutations, **settings)


def plan_pair(store: Store, run_a: str, run_b: str, sources: dict[str, LayerSource],
              options: MatrixOptions) -> list[MatrixJob]:
    """The matrix sets of run_a with itself, or between run_a and run_b."""
    for run_id in {run_a, run_b}:
        if store.run(run_id)["status"] != "complete":
            raise BuildError(f"run {run_id!r} is not complete; finish its build first")
    langs = [lang for lang in run_langs(store, run_a, options.langs)
             if lang in run_langs(store, run_b, options.langs)]
    if not langs:
        raise BuildError(f"runs {run_a!r} and {run_b!r} share no language")
    components_a = sources[run_a].components.reset_index()
    if run_a == run_b:
        return plan_within(components_a, store.run(run_a)["config"].get("modality_pairs") or [],
                           langs, options.pivot)
    return plan_between(components_a, sources[run_b].components.reset_index(), langs)


def compute_matrices(store: Store, pairs: Sequence[tuple[str, str]], options: MatrixOptions, *,
                     load_model: Callable | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """Table rows of every matrix set of each (run_a, run_b) (run_b = run_a: the run's own), a few
    languages per grid, so each layer of a language is prepared once whatever matrices it is in.

    Seed and bootstrap count are run_a's (the first pair's), so the resamples are the very
    sentence draws of the runs' per-layer metrics."""
    sources = {run_id: LayerSource(store, run_id, options, load_model)
               for pair in pairs for run_id in pair}
    for source in sources.values():
        source.check()
    config = store.run(pairs[0][0])["config"]
    settings = {"seed": int(config.get("seed", 0)), "n_bootstrap": int(config.get("n_bootstrap", 200))}
    planned: list[_Planned] = []
    wanted: list[tuple[_Planned, str, str]] = []
    masks: dict[tuple, np.ndarray] = {}
    for run_a, run_b in pairs:
        layers_a, layers_b = store.layers(run_a), store.layers(run_b)
        for job in plan_pair(store, run_a, run_b, sources, options):
            masks[(run_a, run_b, job.component_a, job.component_b)] = shared_mask(
                layers_a[layers_a.component == job.component_a],
                layers_b[layers_b.component == job.component_b], run_a == run_b)
            entry = _Planned(run_a, run_b, job, [])
            planned.append(entry)
            wanted += [(entry, lang_a, lang_b) for lang_a, lang_b in job.lang_pairs]
    # a few languages per grid: within a grid each layer side is prepared once (its SVD, Gram
    # matrix, bootstrap directions: about 40 MB at 200 sentences and 100 resamples), and a grid
    # holding every language of the bundled store reached 22 GB; between grids only the pivot
    # language's sides are prepared again
    wanted.sort(key=lambda want: want[2])
    langs_b = list(dict.fromkeys(want[2] for want in wanted))
    chunks = [set(langs_b[i:i + options.languages_per_grid])
              for i in range(0, len(langs_b), options.languages_per_grid)]
    metrics: list[MetricSpec] = list(BETWEEN_SPACES) + list(WITHIN_SPACE)
    n_cells = sum(len(sources[e.run_a].layers(e.job.component_a, la)[1])
                  * len(sources[e.run_b].layers(e.job.component_b, lb)[1]) for e, la, lb in wanted)
    cells: list[pd.DataFrame] = []
    with tqdm(total=n_cells, desc=f"matrices ({len(wanted)})", unit="cell") as bar:
        for chunk in chunks:
            sides: dict = {}
            requests: list[MatrixRequest] = []
            for entry, lang_a, lang_b in (want for want in wanted if want[2] in chunk):
                job = entry.job
                keys_a = side_keys(sides, (sources[entry.run_a], job.component_a, lang_a),
                                   (sources[entry.run_b], job.component_b, lang_b))
                keys_b = side_keys(sides, (sources[entry.run_b], job.component_b, lang_b),
                                   (sources[entry.run_a], job.component_a, lang_a))
                entry.requests.append((len(cells) + len(requests), lang_a, lang_b))
                requests.append(MatrixRequest(keys_a, keys_b, masks[
                    (entry.run_a, entry.run_b, job.component_a, job.component_b)]))
            start = bar.n

            def progress(done: int, _total: int, start: int = start) -> None:
                bar.update(start + done - bar.n)

            cells += matrices_cells(sides, requests, metrics,
                                    n_permutations=options.n_permutations,
                                    n_bootstrap=settings["n_bootstrap"], seed=settings["seed"],
                                    device=options.device, progress=progress)
    out: dict[tuple[str, str], list[pd.DataFrame]] = {pair: [] for pair in pairs}
    for entry in planned:
        per_lang = [cells[index].assign(lang_a=lang_a, lang_b=lang_b)
                    for index, lang_a, lang_b in entry.requests]
        out[(entry.run_a, entry.run_b)].append(job_rows(entry.job, per_lang, settings, options))
    return {pair: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            for pair, frames in out.items()}


def matrices(store_path: str | Path, run_ids: Sequence[str] | None = None,
             against: Sequence[str] | None = None, options: MatrixOptions = MatrixOptions(), *,
             load_model: Callable | None = None) -> list[MatricesDone]:
    """Compute and publish matrices: each run's own (no ``against``), or each run against each of
    ``against`` ("all": every other complete run). Default runs: every complete run with stored
    activations for its own matrices; every complete run for ``against``."""
    store_path = Path(store_path)
    if not store_path.is_file():
        raise BuildError(f"no store at {store_path}: build one with `python -m precompute build`")
    with torch_threads(options.threads):
        return _publish_matrices(store_path, run_ids, against, options, load_model)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set for the block, restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _publish_matrices(store_path: Path, run_ids: Sequence[str] | None,
                      against: Sequence[str] | None, options: MatrixOptions,
                      load_model: Callable | None) -> list[MatricesDone]:
    # the store's lock: a build publishing meanwhile would otherwise be overwritten by our copy;
    # the copy is migrated when opened for writing, so an older store gets the table too
    with store_lock(store_path), staged_store(store_path, compact=True) as tmp:
        copy_store_file(store_path, tmp)
        with Store.open(tmp, read_only=False) as store:
            pairs = run_pairs(store, run_ids, against)
            results = compute_matrices(store, pairs, options, load_model=load_model)
            done = []
            for (a, b), rows in results.items():
                n_rows = store.replace_layer_matrices(a, b, rows)
                n_sets = 0 if rows.empty else len(rows.groupby(
                    ["component_a", "component_b", "pairing", "lang_a", "lang_b"]))
                done.append(MatricesDone(a, b, n_rows, n_sets))
    log.info("published %s (matrices: %s)", store_path,
             ", ".join(f"{d.run_a} x {d.run_b}" for d in done))
    return done


def run_pairs(store: Store, run_ids: Sequence[str] | None,
              against: Sequence[str] | None) -> list[tuple[str, str]]:
    """(run_a, run_b) to compute: each run with itself (runs named in ``run_ids``, else every
    complete run storing activations), and with ``against`` each of those that store activations
    with itself plus each run against each of ``against`` ("all": every other complete run)."""
    runs = store.runs()
    complete = runs[runs.status == "complete"].run_id.tolist()
    for run_id in list(run_ids or []) + [r for r in (against or []) if r != "all"]:
        store.run(run_id)  # KeyError listing the known runs
    firsts = list(run_ids or complete)
    if run_ids and not against:
        pairs = [(run_id, run_id) for run_id in firsts]
    else:
        pairs = [(run_id, run_id) for run_id in firsts if stores_activations(store, run_id)]
    if against:
        targets = complete if "all" in against else list(against)
        between = [(a, b) for a in firsts for b in targets if a != b]
        pairs += [(a, b) for i, (a, b) in enumerate(between) if (b, a) not in between[:i]]
    if not pairs:
        raise BuildError(f"{store.path}: no runs to compute matrices for")
    return pairs


def has_activations(store: Store, run_id: str, component: str) -> bool:
    """Whether the run stored activations for the component (read for its first language)."""
    lang = run_langs(store, run_id, None)[:1]
    return bool(lang) and not store.activations(run_id, component, 0, lang)[0].empty


def stores_activations(store: Store, run_id: str) -> bool:
    """Whether every component of the run has stored activations."""
    return all(has_activations(store, run_id, component)
               for component in store.components(run_id).component)
