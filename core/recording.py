"""A user's own recording against a stored run: its neighbours, its text-vs-speech agreement, its
place in the stored maps and where in the clip the sentence is carried (pure numpy, no streamlit).

Two steps: ``clip_states(adapter, waveform, lang, text)`` runs the model once (speech components on
the clip, text components on what is said); the functions below compare those states with a
``Reference`` (``load_reference(store, run_id)``: the run's stored pooled states and 2-D maps).

Similarity
    **Cosine**, within one representation space only, as the store's ``paired_cosine`` and maps do.
    A query state at (component, layer) is compared with the stored states of the same point, and
    with another component's point at the nearest path depth when that point lives in the same
    space (a speech LLM's text and speech paths); never across spaces (Whisper's encoder and
    decoder are two spaces, so the recording's neighbours are stored speech, the transcript's stored
    text).

Text-vs-speech agreement (``agreement``)
    Where the speech and text points share a space: the cosine of the recording's pooled state and
    the transcript's. Where they do not (Whisper), a cosine between them is meaningless, so the
    agreement is basis-free (representational similarity): the Pearson correlation, over the stored
    *anchor* sentences (every (sentence, language) stored as both text and speech), of the
    recording's cosines to the anchors' speech states with the transcript's cosines to the same
    anchors' text states. It is 1 when the clip relates to the corpus exactly as its text does. The
    corpus's own same-sentence pairs of the language get the same measure (each leaving its own
    sentence out of the anchors; the clip leaves out the sentence it says when that is in the
    corpus), and the shuffled baseline pairs each speech item with the text of another sentence of
    that language (both sentences left out).

Placement in the stored maps (``place_in_maps``)
    No refit, no stored point moves: the clip's point in the map of a (component, layer) is the mean
    of the 2-D positions of its ``k`` nearest stored items of that point (cosine in the full space),
    weighted by their cosine clipped at 0 (equal weights when all are <= 0). Deterministic; ties go
    to the lower item id. It says "near these items", not where UMAP would have put it.

Frames (``frame_agreement``)
    Per encoder frame (20 ms) and layer, the same agreement measure with one frame's state in place
    of the pooled recording: cosine to the transcript's pooled text state in a shared space, else
    the correlation of the frame's cosines to the anchors' speech states with the transcript's
    cosines to their text states. High where a frame relates to the stored sentences the way the
    sentence's text does. Frames are single 20 ms states compared with pooled clips, so values are
    lower than the clip's and are read relative to each other (and to the pooled row).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SIMILARITY = "cosine"
DEFAULT_K = 5
#: the transcript is taken to say a stored sentence when its CER against it is at most this
MATCH_MAX_CER = 0.35
#: shuffled pairings per corpus item for the baseline distribution
N_SHUFFLES = 5
RSA = "rsa"
COSINE = "cosine"
MEASURE_LABEL = {
    COSINE: "cosine (shared space)",
    RSA: "similarity-profile correlation over stored sentences (spaces differ)",
}


# ----------------------------------------------------------------------------- the stored side

@dataclass
class ReferencePoint:
    """The stored pooled states of one (component, layer), unit-normalised for cosine."""

    component: str
    layer: int
    name: str
    depth: float
    space: str
    modality: str
    items: pd.DataFrame            # item_id, sentence_id, lang, modality, text
    unit: np.ndarray               # (n_items, dim) float32, rows of norm 1


@dataclass
class Reference:
    """What a run stored, as the recording analysis needs it."""

    run_id: str
    model: str
    components: pd.DataFrame       # component, modality, n_layers, dim, space, layer_names
    points: dict[tuple[str, int], ReferencePoint]
    projections: pd.DataFrame      # component, layer, item_id, method, x, y, params (+ item)
    modality_pairs: list[tuple[str, str]] = field(default_factory=list)

    def modality_of(self, component: str) -> str | None:
        """The component's modality ("text" / "speech"), None when the run has no such one."""
        if "_modalities" not in self.__dict__:
            self.__dict__["_modalities"] = dict(zip(self.components["component"].astype(str),
                                                    self.components["modality"].astype(str),
                                                    strict=True))
        return self.__dict__["_modalities"].get(component)

    def components_of(self, modality: str) -> list[str]:
        return [str(c) for c in self.components.loc[self.components["modality"] == modality,
                                                    "component"]]

    def n_layers(self, component: str) -> int:
        return sum(1 for comp, _ in self.points if comp == component)

    def langs(self) -> list[str]:
        return sorted({lang for p in self.points.values()
                       for lang in p.items["lang"].unique()})

    def texts(self) -> pd.DataFrame:
        """sentence_id, lang, text of the stored text items (any text point)."""
        for point in self.points.values():
            if point.modality == "text":
                return point.items[["sentence_id", "lang", "text"]].drop_duplicates()
        for point in self.points.values():
            return point.items[["sentence_id", "lang", "text"]].drop_duplicates()
        return pd.DataFrame(columns=["sentence_id", "lang", "text"])


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def load_reference(store, run_id: str) -> Reference:
    """Read a run's pooled states, layer points and maps through the Store's read API."""
    run = store.run(run_id)
    components = store.components(run_id)
    layers = store.layers(run_id)
    points: dict[tuple[str, int], ReferencePoint] = {}
    for row in layers.itertuples():
        comp = components[components["component"] == row.component].iloc[0]
        items, vectors = store.activations(run_id, row.component, int(row.layer))
        if items.empty:
            continue
        points[(str(row.component), int(row.layer))] = ReferencePoint(
            component=str(row.component), layer=int(row.layer), name=str(row.name),
            depth=float(row.depth), space=str(row.space if pd.notna(row.space) else comp["space"]),
            modality=str(comp["modality"]),
            items=items[["item_id", "sentence_id", "lang", "modality", "text"]].reset_index(drop=True),
            unit=_unit(vectors))
    config = run.get("config") or {}
    pairs = [tuple(map(str, p)) for p in config.get("modality_pairs") or []]
    if not pairs:
        texts = [str(c) for c in components.loc[components["modality"] == "text", "component"]]
        speech = [str(c) for c in components.loc[components["modality"] == "speech", "component"]]
        pairs = [(t, s) for t in texts for s in speech]
    return Reference(run_id=run_id, model=str(run["model"]), components=components, points=points,
                     projections=store.projections(run_id), modality_pairs=pairs)


# ------------------------------------------------------------------------------ the clip's side

@dataclass
class ClipStates:
    """The model's states for one clip and what is said in it.

    ``frames[c]``: (layers, frames, dim) states of speech component ``c`` at the frames holding
    audio, ``frame_times_s`` their start times; ``pooled[c]``: (layers, dim) pooled states of every
    component (speech: the clip; text: the transcript).
    """

    lang: str
    text: str
    pooled: dict[str, np.ndarray]
    frames: dict[str, np.ndarray]
    frame_times_s: dict[str, np.ndarray]


def warm_up(adapter, *, lang: str = "eng_Latn", seconds: float = 5.0,
            sampling_rate: int = 16_000) -> bool:
    """Run the page's model work once on a synthetic clip (a quiet tone) and a short text, so
    that the first user's clip does not pay the model's first-call costs (memory allocation,
    kernel choice: ~0.9 s of the first 5-s clip for whisper-base on a 2-core CPU). Returns False,
    doing nothing, when the model does not know ``lang``. Meant for a model just loaded: the
    adapter's per-clip caches are emptied afterwards (they held only the tone)."""
    if not adapter.supports_language(lang):
        return False
    times = np.arange(int(seconds * sampling_rate), dtype=np.float32) / sampling_rate
    tone = (0.05 * np.sin(2 * np.pi * 220.0 * times)).astype(np.float32)
    clip_states(adapter, tone, lang, "A short sentence to warm the text path up.")
    try:
        adapter.transcribe([tone], [lang])
    except NotImplementedError:
        pass
    adapter.clear_clip_caches()  # they hold only the tone's states
    return True


def clip_states(adapter, waveform: np.ndarray, lang: str, text: str | None, *,
                components: Iterable[str] | None = None) -> ClipStates:
    """Token-level states of the clip (speech components) and of ``text`` (text components),
    pooled as the store pools them. ``text`` None or blank: the text components are skipped."""
    from core.models.base import pool_token_states

    pooled, frames, times = {}, {}, {}
    wanted = set(components) if components is not None else None
    for comp in adapter.components():
        if wanted is not None and comp.name not in wanted:
            continue
        if comp.modality == "speech":
            states = adapter.token_states(comp.name, waveform, lang)
            pooled[comp.name] = pool_token_states(states)
            mask = np.asarray(states.pooled_mask[0], dtype=bool)
            if all(np.array_equal(np.asarray(m, dtype=bool), mask) for m in states.pooled_mask):
                frames[comp.name] = np.stack([layer[mask] for layer in states.layers])
                t = states.times_s[0]
                times[comp.name] = (np.asarray(t)[mask] if t is not None
                                    else np.arange(int(mask.sum()), dtype=float))
        elif text and text.strip():
            pooled[comp.name] = pool_token_states(adapter.token_states(comp.name, text.strip(), lang))
    return ClipStates(lang=lang, text=(text or "").strip(), pooled=pooled, frames=frames,
                      frame_times_s=times)


# ------------------------------------------------------------------------------- neighbours

def candidate_points(reference: Reference, component: str, layer: int) -> list[tuple[str, int]]:
    """Stored points a query at (component, layer) is compared with: that point, plus each other
    component's point at the nearest path depth when it lives in the same space."""
    own = reference.points.get((component, layer))
    if own is None:
        return []
    out = [(component, layer)]
    for other in dict.fromkeys(c for c, _ in reference.points):
        if other == component:
            continue
        pts = [p for (c, _), p in reference.points.items() if c == other]
        nearest = min(pts, key=lambda p: (abs(p.depth - own.depth), p.layer))
        if nearest.space == own.space and nearest.unit.shape[1] == own.unit.shape[1]:
            out.append((other, nearest.layer))
    return out


@dataclass
class _Ranking:
    """Every candidate stored item of one query, best first (score descending, ties by item id,
    then candidate order): ``point[i]``/``row[i]`` locate the i-th best item in
    ``reference.points``, ``score[i]`` is its cosine. Arrays only: a query ranks thousands of
    items, of which the page shows k."""

    points: list[tuple[str, int]]
    point: np.ndarray
    row: np.ndarray
    score: np.ndarray

    def frame(self, reference: Reference, n: int | None = None) -> pd.DataFrame:
        """The best ``n`` (default: all) as rows: the items' columns, score, stored_component,
        stored_layer."""
        chosen = slice(None) if n is None else slice(0, n)
        point, row, score = self.point[chosen], self.row[chosen], self.score[chosen]
        frames = []
        for i in dict.fromkeys(point.tolist()):
            comp, layer = self.points[i]
            mine = point == i
            rows = reference.points[(comp, layer)].items.iloc[row[mine]].reset_index(drop=True)
            rows["score"] = score[mine]
            rows["stored_component"] = comp
            rows["stored_layer"] = layer
            rows["_rank"] = np.flatnonzero(mine)
            frames.append(rows)
        if not frames:
            return pd.DataFrame(columns=["item_id", "sentence_id", "lang", "modality", "text",
                                         "score", "stored_component", "stored_layer"])
        return pd.concat(frames, ignore_index=True).sort_values("_rank", kind="stable") \
            .drop(columns="_rank").reset_index(drop=True)

    def column(self, reference: Reference, name: str) -> np.ndarray:
        """One items column (e.g. ``sentence_id``) of every candidate, best first."""
        values = np.concatenate([reference.points[p].items[name].to_numpy() for p in self.points])
        offsets = np.cumsum([0] + [len(reference.points[p].items) for p in self.points])[:-1]
        return values[offsets[self.point] + self.row]


def _ranking(reference: Reference, points: list[tuple[str, int]], query: np.ndarray) -> _Ranking:
    q = _unit(query)
    scores = [reference.points[p].unit @ q for p in points]
    score = np.concatenate(scores)
    item_id = np.concatenate([reference.points[p].items["item_id"].to_numpy() for p in points])
    point = np.repeat(np.arange(len(points)), [len(s) for s in scores])
    row = np.concatenate([np.arange(len(s)) for s in scores])
    order = np.lexsort((item_id, -score))  # stable: equal scores and ids keep candidate order
    return _Ranking(points, point[order], row[order], score[order])


def _query_name(reference: Reference, component: str) -> str:
    modality = reference.modality_of(component)
    return "recording" if modality == "speech" else "transcript"


def nearest_neighbours(reference: Reference, states: ClipStates, *, k: int = DEFAULT_K
                       ) -> pd.DataFrame:
    """The ``k`` nearest stored items per (component, layer) of every query state, best first.

    Columns: component, layer, layer_name, depth, query ("recording" / "transcript"), rank (1 =
    nearest), item_id, sentence_id, lang, modality, text, score (cosine), stored_component.
    """
    frames = []
    for comp, pooled in states.pooled.items():
        for layer in range(pooled.shape[0]):
            points = candidate_points(reference, comp, layer)
            if not points:
                continue
            top = _ranking(reference, points, pooled[layer]).frame(reference, k)
            point = reference.points[(comp, layer)]
            top.insert(0, "rank", np.arange(1, len(top) + 1))
            top.insert(0, "query", _query_name(reference, comp))
            top.insert(0, "depth", point.depth)
            top.insert(0, "layer_name", point.name)
            top.insert(0, "layer", layer)
            top.insert(0, "component", comp)
            frames.append(top)
    columns = ["component", "layer", "layer_name", "depth", "query", "rank", "item_id",
               "sentence_id", "lang", "modality", "text", "score", "stored_component"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def neighbour_table(neighbours: pd.DataFrame, component: str) -> pd.DataFrame:
    """Layer x rank table of one component's neighbours: "lang · text (score)" per cell."""
    rows = neighbours[neighbours["component"] == component]
    if rows.empty:
        return pd.DataFrame()
    cells = rows.assign(cell=[f"{r.lang} · {_short(r.text)} ({r.score:.3f})"
                              for r in rows.itertuples()])
    table = cells.pivot_table(index=["layer", "layer_name"], columns="rank", values="cell",
                              aggfunc="first")
    table.columns = [f"#{c}" for c in table.columns]
    table = table.reset_index().set_index("layer_name").drop(columns="layer")
    table.index.name = "layer"
    return table


def _short(text: object, limit: int = 48) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _normalised_texts(reference: Reference, lang: str | None) -> pd.DataFrame:
    """sentence_id, lang, norm: the stored texts of ``lang`` (all when None), normalised once
    per reference and language (a clip of a given language then costs its 200, not 4,000)."""
    from core.asr_quality import normalise_text

    cache = reference.__dict__.setdefault("_normalised_texts", {})
    if lang not in cache:
        stored = reference.texts()
        if lang is not None:
            stored = stored[stored["lang"] == lang]
        stored = stored[[isinstance(t, str) and bool(t.strip()) for t in stored["text"]]]
        cache[lang] = pd.DataFrame({
            "sentence_id": stored["sentence_id"].astype(int).to_numpy(),
            "lang": stored["lang"].astype(str).to_numpy(),
            "norm": [normalise_text(t, g) for t, g in zip(stored["text"], stored["lang"],
                                                          strict=True)]})
    return cache[lang]


def match_sentence(reference: Reference, text: str, lang: str | None = None
                   ) -> tuple[int, float, str] | None:
    """(sentence_id, CER, lang) of the stored sentence of ``lang`` (every language when None) that
    the text says, when its CER is at most ``MATCH_MAX_CER``; None otherwise. Sentences whose
    length alone rules them out (CER >= length difference / length) are skipped unmeasured."""
    from core.asr_quality import levenshtein, normalise_text

    if not text or not text.strip():
        return None
    stored = _normalised_texts(reference, lang)
    best = None
    hypotheses: dict[str, str] = {}
    for sentence_id, row_lang, ref_text in zip(stored["sentence_id"], stored["lang"],
                                               stored["norm"], strict=True):
        if row_lang not in hypotheses:
            hypotheses[row_lang] = normalise_text(text, row_lang)
        hyp = hypotheses[row_lang]
        if not ref_text or abs(len(ref_text) - len(hyp)) / len(ref_text) > MATCH_MAX_CER:
            continue
        cer = levenshtein(ref_text, hyp) / len(ref_text)
        if best is None or cer < best[1]:
            best = (int(sentence_id), float(cer), str(row_lang))
    return best if best is not None and best[1] <= MATCH_MAX_CER else None


def sentence_ranks(reference: Reference, states: ClipStates, sentence_id: int) -> pd.DataFrame:
    """Per query and layer, the rank (1 = nearest) among all candidates of the best stored item of
    ``sentence_id`` (any language), with its language and score."""
    out = []
    for comp, pooled in states.pooled.items():
        for layer in range(pooled.shape[0]):
            points = candidate_points(reference, comp, layer)
            if not points:
                continue
            ranking = _ranking(reference, points, pooled[layer])
            hits = np.flatnonzero(ranking.column(reference, "sentence_id") == sentence_id)
            if hits.size == 0:
                continue
            first = int(hits[0])
            point = reference.points[(comp, layer)]
            out.append({"component": comp, "layer": layer, "layer_name": point.name,
                        "depth": point.depth, "query": _query_name(reference, comp),
                        "rank": first + 1, "n_candidates": len(ranking.score),
                        "lang": ranking.column(reference, "lang")[first],
                        "score": float(ranking.score[first])})
    return pd.DataFrame(out, columns=["component", "layer", "layer_name", "depth", "query", "rank",
                                      "n_candidates", "lang", "score"])


# ------------------------------------------------------------------------------ agreement

def aligned_layer(n_from: int, n_to: int, layer: int) -> int:
    """The layer of an ``n_to`` stack at the relative depth of ``layer`` in an ``n_from`` stack."""
    if n_from <= 1 or n_to <= 1:
        return 0
    return int(math.floor(layer / (n_from - 1) * (n_to - 1) + 0.5))


@dataclass
class _Anchors:
    sentence_ids: np.ndarray
    langs: np.ndarray
    speech: np.ndarray     # (J, d_s) unit
    text: np.ndarray       # (J, d_t) unit


def _anchors(reference: Reference, text_point: ReferencePoint, speech_point: ReferencePoint
             ) -> _Anchors:
    """Anchor sentences of a (text point, speech point): computed once per reference."""
    key = (text_point.component, text_point.layer, speech_point.component, speech_point.layer)
    cache = reference.__dict__.setdefault("_anchor_cache", {})
    if key not in cache:
        cache[key] = _build_anchors(text_point, speech_point)
    return cache[key]


def _build_anchors(text_point: ReferencePoint, speech_point: ReferencePoint) -> _Anchors:
    """Every (sentence, language) stored as both text and speech, in the speech point's order."""
    keys = ["sentence_id", "lang"]
    text_rows = text_point.items[keys].astype({"sentence_id": int, "lang": str}).reset_index(
        drop=True).drop_duplicates(keep="first")
    speech_rows = speech_point.items[keys].astype({"sentence_id": int, "lang": str})
    pairs = speech_rows.reset_index(drop=True).reset_index(names="si").merge(
        text_rows.reset_index(names="ti"), on=keys, how="inner", sort=False).sort_values("si")
    ti, si = pairs["ti"].to_numpy(dtype=int), pairs["si"].to_numpy(dtype=int)
    return _Anchors(pairs["sentence_id"].to_numpy(dtype=int), pairs["lang"].to_numpy(dtype=str),
                    speech_point.unit[si], text_point.unit[ti])


def masked_pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``a`` and ``b`` (rows, J) over the columns ``mask`` keeps;
    NaN where fewer than 3 columns are kept or a row is constant.

    ``mask`` of shape (J,) keeps the same columns in every row: they are selected once (the live
    page's common case, and several times faster than weighting every row by the mask)."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 1:
        keep = np.flatnonzero(mask)
        if keep.size < 3:
            return np.full(a.shape[0], np.nan)
        if b.shape[0] == 1 or b.strides[0] == 0:  # one profile for every row (the frame view)
            return _pearson_with_one_profile(a[:, keep].astype(np.float64),
                                             b[0, keep].astype(np.float64))
        a = a[:, keep].astype(np.float64)
        b = np.broadcast_to(b, (a.shape[0], b.shape[1]))[:, keep].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            da, db = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
            r = np.einsum("ij,ij->i", da, db) / np.sqrt(np.einsum("ij,ij->i", da, da)
                                                        * np.einsum("ij,ij->i", db, db))
        # a constant row: its float64 mean can be off by rounding, so test it directly
        r[(a.max(axis=1) == a.min(axis=1)) | (b.max(axis=1) == b.min(axis=1))] = np.nan
        return r
    # a mask per row (the corpus side: every row leaves out its own sentences): float32, centred
    # before any product (so no cancellation; about 1e-7 from float64 on (200, 4000) cosine
    # profiles) and without temporaries, about 9x faster than float64 products of masked copies
    a = np.asarray(a, dtype=np.float32)  # no copy when float32 already: the products make new
    b = np.asarray(np.broadcast_to(b, a.shape), dtype=np.float32)
    mask = np.broadcast_to(mask, a.shape).astype(np.float32)
    n = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        da = a - (np.einsum("ij,ij->i", a, mask) / n)[:, None]
        da *= mask
        db = b - (np.einsum("ij,ij->i", b, mask) / n)[:, None]
        db *= mask
        ss_a, ss_b = np.einsum("ij,ij->i", da, da), np.einsum("ij,ij->i", db, db)
        r = (np.einsum("ij,ij->i", da, db) / np.sqrt(ss_a * ss_b)).astype(np.float64)
    r[n < 3] = np.nan
    # a constant row is centred only to rounding: rows whose spread is under 0.1 % of their
    # values' scale (none, for real similarity profiles) are checked exactly
    for x, ss in ((a, ss_a), (b, ss_b)):
        scale = np.maximum(x.max(axis=1), -x.min(axis=1))
        for i in np.flatnonzero(ss <= n * (1e-3 * scale) ** 2):
            kept = x[i][mask[i] > 0]
            if kept.size and kept.max() == kept.min():
                r[i] = np.nan
    return r


def _pearson_with_one_profile(a: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """``masked_pearson`` of every row of ``a`` (rows, J) with one ``profile`` (J,), columns
    already selected: the profile is centred once and the products are one matrix-vector
    product (no copy of the profile per row: the frame view correlates ~50 frames a second of
    clip with the same transcript profile)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        da = a - a.mean(axis=1, keepdims=True)
        dp = profile - profile.mean()
        r = (da @ dp) / np.sqrt(np.einsum("ij,ij->i", da, da) * (dp @ dp))
    r[a.max(axis=1) == a.min(axis=1)] = np.nan
    if profile.max() == profile.min():
        r[:] = np.nan
    return r


def _derangements(sentences: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``n`` permutations of positions that never map an item to one of the same sentence."""
    rng = np.random.default_rng(seed)
    out = []
    m = len(sentences)
    if len(np.unique(sentences)) < 2:
        return out
    for _ in range(n):
        for _attempt in range(100):
            perm = rng.permutation(m)
            if not np.any(sentences[perm] == sentences):
                out.append(perm)
                break
        else:  # few sentences: shift by one distinct sentence instead
            order = np.argsort(sentences, kind="stable")
            out.append(np.roll(order, 1)[np.argsort(order)])
    return out


@dataclass
class _CorpusAgreement:
    """The corpus side of one layer's agreement for one language: clip-independent, so computed
    once per reference and language and reused by every clip."""

    scope: str                     # "language" or "all languages"
    measure: str
    sentences: np.ndarray          # (items,) sentence ids of the corpus pairs
    corpus: np.ndarray             # (items,) same-sentence values
    shuffled: np.ndarray           # (shuffles, items) values of derangements


def _corpus_agreement(reference: Reference, text_point: ReferencePoint,
                      speech_point: ReferencePoint, lang: str, n_shuffles: int, seed: int
                      ) -> _CorpusAgreement:
    key = (text_point.component, text_point.layer, speech_point.component, speech_point.layer,
           lang, n_shuffles, seed)
    cache = reference.__dict__.setdefault("_corpus_agreement_cache", {})
    if key in cache:
        return cache[key]
    anchors = _anchors(reference, text_point, speech_point)
    in_lang = anchors.langs == lang
    scope = "language" if in_lang.any() else "all languages"
    chosen = np.flatnonzero(in_lang) if in_lang.any() else np.arange(len(anchors.langs))
    sentences = anchors.sentence_ids[chosen]
    perms = _derangements(sentences, n_shuffles, seed)
    if _shared_space(text_point, speech_point):
        corpus = np.sum(anchors.speech[chosen] * anchors.text[chosen], axis=1)
        shuffled = [np.sum(anchors.speech[chosen] * anchors.text[chosen[perm]], axis=1)
                    for perm in perms]
        measure = COSINE
    else:
        ps = anchors.speech[chosen] @ anchors.speech.T   # (items, anchors), reused
        pt = anchors.text[chosen] @ anchors.text.T       # by the shuffles below
        own = anchors.sentence_ids[chosen][:, None] != anchors.sentence_ids[None, :]
        corpus = masked_pearson(ps, pt, own)
        shuffled = [masked_pearson(ps, pt[perm], own & own[perm]) for perm in perms]
        measure = RSA
    result = _CorpusAgreement(scope, measure, sentences, np.asarray(corpus, dtype=np.float64),
                              np.array(shuffled, dtype=np.float64).reshape(len(perms),
                                                                           len(sentences)))
    cache[key] = result
    return result


def _shared_space(text_point: ReferencePoint, speech_point: ReferencePoint) -> bool:
    return (speech_point.space == text_point.space
            and speech_point.unit.shape[1] == text_point.unit.shape[1])


def _layer_pairs(reference: Reference, text_comp: str, speech_comp: str
                 ) -> Iterator[tuple[int, int, ReferencePoint, ReferencePoint]]:
    """(speech layer, text layer, speech point, text point) of every speech layer whose stored
    point and text point at the same relative depth both exist: what ``agreement`` compares."""
    n_s, n_t = reference.n_layers(speech_comp), reference.n_layers(text_comp)
    for ls in range(n_s):
        lt = aligned_layer(n_s, n_t, ls)
        sp, tp = reference.points.get((speech_comp, ls)), reference.points.get((text_comp, lt))
        if sp is not None and tp is not None:
            yield ls, lt, sp, tp


def agreement(reference: Reference, states: ClipStates, sentence_id: int | None = None, *,
              n_shuffles: int = N_SHUFFLES, seed: int = 0) -> pd.DataFrame:
    """The clip's text-vs-speech agreement per layer, with the corpus's same-sentence pairs of the
    clip's language and a shuffled baseline (see the module docstring for the measure).

    Columns: text_component, speech_component, layer (speech), layer_name, text_layer, depth,
    measure, kind ("recording" / "corpus" / "shuffled"), value, sentence_id, lang, corpus_scope
    ("language" when the corpus has the clip's language, else "all languages").
    """
    columns = ["text_component", "speech_component", "layer", "layer_name", "text_layer", "depth",
               "measure", "kind", "value", "sentence_id", "lang", "corpus_scope"]
    blocks = []
    for text_comp, speech_comp in reference.modality_pairs:
        if text_comp not in states.pooled or speech_comp not in states.pooled:
            continue
        for ls, lt, sp, tp in _layer_pairs(reference, text_comp, speech_comp):
            side = _corpus_agreement(reference, tp, sp, states.lang, n_shuffles, seed)
            u_s = _unit(states.pooled[speech_comp][ls])
            u_t = _unit(states.pooled[text_comp][lt])
            if side.measure == COSINE:
                clip_value = float(u_s @ u_t)
            else:
                anchors = _anchors(reference, tp, sp)
                keep = anchors.sentence_ids != (-1 if sentence_id is None else sentence_id)
                clip_value = float(masked_pearson(anchors.speech @ u_s, anchors.text @ u_t,
                                                  keep)[0])
            n_shuffled = side.shuffled.size
            # every column in one constructor (scalars broadcast): adding the nine constant
            # columns one by one cost ~0.3 ms each in pandas' string column index (~0.02 s a
            # clip)
            blocks.append(pd.DataFrame({
                "kind": ["recording"] + ["corpus"] * len(side.sentences) + ["shuffled"] * n_shuffled,
                "value": np.concatenate([[clip_value], side.corpus, side.shuffled.ravel()]),
                "sentence_id": pd.array([sentence_id, *side.sentences.tolist(),
                                         *np.tile(side.sentences, len(side.shuffled)).tolist()],
                                        dtype="Int64"),
                "text_component": text_comp, "speech_component": speech_comp, "layer": ls,
                "layer_name": sp.name, "text_layer": lt, "depth": sp.depth,
                "measure": side.measure, "lang": states.lang, "corpus_scope": side.scope,
            }))
    if not blocks:
        return pd.DataFrame(columns=columns)
    return pd.concat(blocks, ignore_index=True)[columns]


def agreement_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per layer: the clip's value, the corpus's mean and 10-90 % range, the shuffled mean, and
    the clip's percentile among the corpus's same-sentence pairs."""
    out = []
    for (text_comp, speech_comp, layer), group in rows.groupby(
            ["text_component", "speech_component", "layer"], sort=True):
        clip = group.loc[group["kind"] == "recording", "value"]
        corpus = group.loc[group["kind"] == "corpus", "value"].dropna()
        shuffled = group.loc[group["kind"] == "shuffled", "value"].dropna()
        value = float(clip.iloc[0]) if len(clip) else math.nan
        out.append({
            "text_component": text_comp, "speech_component": speech_comp, "layer": int(layer),
            "layer_name": group["layer_name"].iloc[0], "measure": group["measure"].iloc[0],
            "recording": value,
            "corpus_mean": float(corpus.mean()) if len(corpus) else math.nan,
            "corpus_p10": float(corpus.quantile(0.1)) if len(corpus) else math.nan,
            "corpus_p90": float(corpus.quantile(0.9)) if len(corpus) else math.nan,
            "shuffled_mean": float(shuffled.mean()) if len(shuffled) else math.nan,
            "percentile": (float((corpus < value).mean() * 100) if len(corpus)
                           and not math.isnan(value) else math.nan),
            "n_corpus": len(corpus), "corpus_scope": group["corpus_scope"].iloc[0]})
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------ maps

def place_in_maps(reference: Reference, states: ClipStates, *, k: int = DEFAULT_K) -> pd.DataFrame:
    """The clip's (and transcript's) position in every stored map, without refitting: the
    cosine-weighted mean position of the ``k`` nearest stored items of the same point.

    Columns: component, layer, layer_name, method, params, query, x, y, neighbour_ids.
    """
    proj = reference.projections
    out = []
    if proj.empty:
        return pd.DataFrame(columns=["component", "layer", "layer_name", "method", "params",
                                     "query", "x", "y", "neighbour_ids"])
    for (comp, layer, method), rows in proj.groupby(["component", "layer", "method"], sort=True):
        comp, layer = str(comp), int(layer)
        point = reference.points.get((comp, layer))
        if point is None or comp not in states.pooled or layer >= states.pooled[comp].shape[0]:
            continue
        x, y, ids = weighted_position(point, rows, states.pooled[comp][layer], k=k)
        out.append({"component": comp, "layer": layer, "layer_name": point.name,
                    "method": method, "params": rows["params"].iloc[0],
                    "query": _query_name(reference, comp), "x": x, "y": y, "neighbour_ids": ids})
    return pd.DataFrame(out)


def map_methods(reference: Reference) -> dict[str, str]:
    """The one map method each component's maps are shown in: its first by name among those
    ``map_panels_of`` gives panels for. One rule for the stored maps the page shows while it
    waits and for the clip's placements afterwards (a component whose layers lack another
    component's method still gets its own maps)."""
    methods: dict[str, str] = {}
    for component, method in map_panels_of(reference):
        methods[component] = min(method, methods.get(component, method))
    return methods


def map_panels_of(reference: Reference) -> dict[tuple[str, str], tuple[tuple, tuple]]:
    """Per (component, method) of the run's stored maps, its panels as ``place_in_maps`` places
    a clip into them: ``((layer, params), ...)`` and ``((layer, layer_name), ...)`` in layer
    order, the two tuples ``dashboard.charts.recording.map_panels`` reads off a clip's
    placements. Depends on the run only, so the page can build the stored part of its maps
    before any clip arrives."""
    proj = reference.projections
    out: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    if proj.empty:
        return {}
    for (comp, layer, method), rows in proj.groupby(["component", "layer", "method"], sort=True):
        point = reference.points.get((str(comp), int(layer)))
        if point is not None:
            out.setdefault((str(comp), str(method)), []).append(
                (int(layer), str(rows["params"].iloc[0]), point.name))
    return {key: (tuple((layer, params) for layer, params, _ in panels),
                  tuple((layer, name) for layer, _, name in panels))
            for key, panels in out.items()}


def prepare_language(reference: Reference, lang: str, *, n_shuffles: int = N_SHUFFLES,
                     seed: int = 0) -> int:
    """Compute (and cache in ``reference``) the corpus side of the agreement for ``lang`` at every
    layer pair ``agreement`` compares, and the language's normalised stored texts (the sentence
    match): what the first clip of a language would otherwise wait for. Returns the number of
    layer pairs now cached; 0 for a language the run does not hold (its clips compare with every
    language's pairs, computed when such a clip comes)."""
    if lang not in reference.langs():
        return 0
    _normalised_texts(reference, lang)  # what the clip's text is matched against
    done = 0
    for text_comp, speech_comp in reference.modality_pairs:
        for _ls, _lt, sp, tp in _layer_pairs(reference, text_comp, speech_comp):
            _corpus_agreement(reference, tp, sp, lang, n_shuffles, seed)
            done += 1
    return done


def weighted_position(point: ReferencePoint, map_rows: pd.DataFrame, query: np.ndarray, *,
                      k: int = DEFAULT_K) -> tuple[float, float, tuple[int, ...]]:
    """(x, y, neighbour item ids): weighted mean of the map positions of the ``k`` nearest items."""
    map_ids, first = np.unique(map_rows["item_id"].to_numpy(dtype=np.int64), return_index=True)
    map_xy = map_rows[["x", "y"]].to_numpy(dtype=np.float64)[first]
    item_ids = point.items["item_id"].to_numpy(dtype=np.int64)
    on_map = np.isin(item_ids, map_ids)
    if not on_map.any():
        return math.nan, math.nan, ()
    scores = point.unit[on_map] @ _unit(query)
    order = np.lexsort((item_ids[on_map], -scores))[:k]
    weights = np.clip(scores[order].astype(np.float64), 0.0, None)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    ids = item_ids[on_map][order]
    xy = map_xy[np.searchsorted(map_ids, ids)]
    x, y = (weights[:, None] * xy).sum(axis=0) / weights.sum()
    return float(x), float(y), tuple(int(i) for i in ids)


# ------------------------------------------------------------------------------ frames

@dataclass
class FrameView:
    """Layers x frames agreement of one speech component with the transcript's text state."""

    speech_component: str
    text_component: str
    measure: str
    values: np.ndarray             # (layers, frames)
    times_s: np.ndarray            # (frames,)
    layer_names: list[str]
    pooled: np.ndarray             # (layers,): the same measure for the pooled clip


def frame_agreement(reference: Reference, states: ClipStates, sentence_id: int | None = None
                    ) -> list[FrameView]:
    """Per modality pair with frames: see the module docstring."""
    views = []
    for text_comp, speech_comp in reference.modality_pairs:
        if speech_comp not in states.frames or text_comp not in states.pooled:
            continue
        frames = states.frames[speech_comp]
        n_s, n_t = frames.shape[0], reference.n_layers(text_comp)
        values, pooled, names, measure = [], [], [], RSA
        for ls in range(n_s):
            lt = aligned_layer(n_s, n_t, ls)
            sp, tp = reference.points.get((speech_comp, ls)), reference.points.get((text_comp, lt))
            if sp is None or tp is None:
                continue
            u_t = _unit(states.pooled[text_comp][lt])
            f = _unit(frames[ls])
            if sp.space == tp.space and sp.unit.shape[1] == tp.unit.shape[1]:
                measure = COSINE
                values.append(f @ u_t)
                pooled.append(float(_unit(states.pooled[speech_comp][ls]) @ u_t))
            else:
                anchors = _anchors(reference, tp, sp)
                keep = anchors.sentence_ids != (-1 if sentence_id is None else sentence_id)
                profile_t = anchors.text @ u_t
                values.append(masked_pearson(f @ anchors.speech.T,
                                             np.broadcast_to(profile_t, (len(f), len(profile_t))),
                                             keep))
                pooled.append(float(masked_pearson(
                    anchors.speech @ _unit(states.pooled[speech_comp][ls]), profile_t, keep)[0]))
            names.append(sp.name)
        if values:
            views.append(FrameView(speech_comp, text_comp, measure, np.stack(values),
                                   states.frame_times_s[speech_comp], names, np.array(pooled)))
    return views


# ------------------------------------------------------------------------------ everything

@dataclass
class NeighbourSection:
    """The page's first section: the stored sentence the text matches (if any), the nearest
    stored items per layer and, for a matched sentence, its rank per layer."""

    matched: tuple[int, float, str] | None
    neighbours: pd.DataFrame
    ranks: pd.DataFrame

    @property
    def sentence(self) -> int | None:
        """The matched stored sentence's id (left out of the anchors by the later sections)."""
        return self.matched[0] if self.matched else None


def neighbour_section(reference: Reference, states: ClipStates, *, k: int = DEFAULT_K
                      ) -> NeighbourSection:
    matched = match_sentence(reference, states.text, states.lang)
    sentence = matched[0] if matched else None
    return NeighbourSection(
        matched=matched, neighbours=nearest_neighbours(reference, states, k=k),
        ranks=(sentence_ranks(reference, states, sentence) if sentence is not None
               else pd.DataFrame()))


def agreement_section(reference: Reference, states: ClipStates, sentence: int | None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The agreement rows and their per-layer summary (empty frames without a text path)."""
    rows = agreement(reference, states, sentence)
    return rows, agreement_summary(rows) if not rows.empty else pd.DataFrame()


@dataclass
class ClipAnalysis:
    """Everything the page draws for one clip (the page computes it section by section, drawing
    each before computing the next; this is the same in one call, for benchmarks and tests)."""

    lang: str
    text: str
    matched: tuple[int, float, str] | None
    neighbours: pd.DataFrame
    ranks: pd.DataFrame
    agreement: pd.DataFrame
    summary: pd.DataFrame
    placements: pd.DataFrame
    frames: list[FrameView]


def analyse(reference: Reference, states: ClipStates, *, k: int = DEFAULT_K) -> ClipAnalysis:
    near = neighbour_section(reference, states, k=k)
    rows, summary = agreement_section(reference, states, near.sentence)
    return ClipAnalysis(
        lang=states.lang, text=states.text, matched=near.matched, neighbours=near.neighbours,
        ranks=near.ranks, agreement=rows, summary=summary,
        placements=place_in_maps(reference, states, k=k),
        frames=frame_agreement(reference, states, near.sentence))


def flores_for_whisper(code: str, prefer: Iterable[str] = ()) -> str | None:
    """The FLORES-200 code for a Whisper language code: one of ``prefer`` (the store's languages)
    when one maps to it, else the first in the language table; None when the table has none."""
    from core.languages import known_languages, language

    matches = [lang for lang in known_languages() if language(lang).whisper_code == code]
    preferred = [lang for lang in prefer if lang in matches]
    return (preferred or matches or [None])[0]
