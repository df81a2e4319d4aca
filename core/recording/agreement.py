"""Text-vs-speech agreement of the clip per layer, beside the corpus's same-sentence pairs and a
shuffled baseline.

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
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.recording.clip import ClipStates
from core.recording.correlation import masked_pearson
from core.recording.matching import normalised_texts
from core.recording.reference import Reference, ReferencePoint, unit_rows

#: shuffled pairings per corpus item for the baseline distribution
N_SHUFFLES = 5
RSA = "rsa"
COSINE = "cosine"
MEASURE_LABEL = {
    COSINE: "cosine (shared space)",
    RSA: "similarity-profile correlation over stored sentences (spaces differ)",
}


def aligned_layer(n_from: int, n_to: int, layer: int) -> int:
    """The layer of an ``n_to`` stack at the relative depth of ``layer`` in an ``n_from`` stack."""
    if n_from <= 1 or n_to <= 1:
        return 0
    return int(math.floor(layer / (n_from - 1) * (n_to - 1) + 0.5))


@dataclass
class Anchors:
    """Every (sentence, language) stored as both text and speech at a (text point, speech point)."""

    sentence_ids: np.ndarray
    langs: np.ndarray
    speech: np.ndarray     # (J, d_s) unit
    text: np.ndarray       # (J, d_t) unit


def anchors_of(reference: Reference, text_point: ReferencePoint, speech_point: ReferencePoint
               ) -> Anchors:
    """Anchor sentences of a (text point, speech point): computed once per reference."""
    key = (text_point.component, text_point.layer, speech_point.component, speech_point.layer)
    cache = reference.__dict__.setdefault("_anchor_cache", {})
    if key not in cache:
        cache[key] = _build_anchors(text_point, speech_point)
    return cache[key]


def _build_anchors(text_point: ReferencePoint, speech_point: ReferencePoint) -> Anchors:
    """Every (sentence, language) stored as both text and speech, in the speech point's order."""
    keys = ["sentence_id", "lang"]
    text_rows = text_point.items[keys].astype({"sentence_id": int, "lang": str}).reset_index(
        drop=True).drop_duplicates(keep="first")
    speech_rows = speech_point.items[keys].astype({"sentence_id": int, "lang": str})
    pairs = speech_rows.reset_index(drop=True).reset_index(names="si").merge(
        text_rows.reset_index(names="ti"), on=keys, how="inner", sort=False).sort_values("si")
    ti, si = pairs["ti"].to_numpy(dtype=int), pairs["si"].to_numpy(dtype=int)
    return Anchors(pairs["sentence_id"].to_numpy(dtype=int), pairs["lang"].to_numpy(dtype=str),
                   speech_point.unit[si], text_point.unit[ti])


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
    anchors = anchors_of(reference, text_point, speech_point)
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
            u_s = unit_rows(states.pooled[speech_comp][ls])
            u_t = unit_rows(states.pooled[text_comp][lt])
            if side.measure == COSINE:
                clip_value = float(u_s @ u_t)
            else:
                anchors = anchors_of(reference, tp, sp)
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


def prepare_language(reference: Reference, lang: str, *, n_shuffles: int = N_SHUFFLES,
                     seed: int = 0) -> int:
    """Compute (and cache in ``reference``) the corpus side of the agreement for ``lang`` at every
    layer pair ``agreement`` compares, and the language's normalised stored texts (the sentence
    match): what the first clip of a language would otherwise wait for. Returns the number of
    layer pairs now cached; 0 for a language the run does not hold (its clips compare with every
    language's pairs, computed when such a clip comes)."""
    if lang not in reference.langs():
        return 0
    normalised_texts(reference, lang)  # what the clip's text is matched against
    done = 0
    for text_comp, speech_comp in reference.modality_pairs:
        for _ls, _lt, sp, tp in _layer_pairs(reference, text_comp, speech_comp):
            _corpus_agreement(reference, tp, sp, lang, n_shuffles, seed)
            done += 1
    return done
