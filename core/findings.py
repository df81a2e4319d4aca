"""The reference study's four findings, re-checked on a run's metrics table (pure pandas/numpy).

Lee et al. (2024, arXiv:2411.17666) report that, in multimodal models:
1. text-speech similarity of the same sentence rises over layers, after modality-specific early layers;
2. length adaptation narrows the modality gap, mostly for high-resource languages;
3. speech is less similar across languages than text;
4. the modality gap is larger than the language gap.
``compute_findings`` turns a metrics table into a verdict per finding with the numbers behind it, so a
reader can see at once whether this run agrees, disagrees, or cannot tell.

Every verdict compares chance-corrected values (value minus the row's own shuffled-pairs baseline;
``core.metrics.joint`` says why), aggregated over languages and layers and bootstrapped jointly over
the same sentence resamples; raw values, baselines and corrected values are reported side by side,
with the verdict the raw values would have given. A verdict needs enough sentences and resamples
(``joint.MIN_SENTENCES``, ``joint.MIN_RESAMPLES``) and never rests on a zero-width interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from core.metrics import joint
from core.metrics.joint import DOES_NOT_HOLD, HOLDS, NOT_ENOUGH_DATA, Aggregate
from core.metrics.similarity import NEEDS_SHARED_SPACE
from core.models.base import LENGTH_REDUCING_STAGES

# LENGTH_REDUCING_STAGES: the stage labels of points whose output is shorter than their input
# (Seamless' length adaptor, Qwen2-Audio's pooling, SONAR's attention pooler). Findings read these
# labels (the metric rows' ``stage_b``), never free-text descriptions. NEEDS_SHARED_SPACE: the
# metrics that compare coordinates, never stored across representation spaces.
Z_95 = joint.Z_95
#: Depth thirds compared in finding 1.
EARLY_DEPTH, LATE_DEPTH = 1 / 3, 2 / 3
#: A baseline within this fraction of the value leaves little above chance: warn (SVCCA's k).
BASELINE_WARN_FRACTION = 0.8
TITLES = {
    1: "Text-speech similarity rises over layers after the modality-specific first layers",
    2: "Length adaptation narrows the modality gap",
    3: "Speech is less similar across languages than text",
    4: "The modality gap is larger than the language gap",
}
_REPORTED_PARAMS = {"k_x", "k_y"}
_LEVEL_ORDER = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class Finding:
    """One finding: a verdict ("holds", "does not hold", "not enough data") on chance-corrected
    values, the verdict raw values would give, a sentence or two with the numbers, and the per-layer
    / per-level numbers behind it (``value`` corrected, ``raw``, ``baseline``)."""

    id: int
    title: str
    verdict: str
    summary: str
    details: pd.DataFrame = field(default_factory=pd.DataFrame)
    raw_verdict: str = ""
    effect: Aggregate | None = None
    #: finding 3 only: how much more a change of language lowers speech similarity than a change of
    #: voice alone (None without a second voice)
    voice_effect: Aggregate | None = None


@dataclass(frozen=True)
class _Context:
    n_permutations: int | None

    def combine(self, *parts: tuple[pd.DataFrame, float]) -> Aggregate:
        return joint.corrected_combination([(rows, _boot(rows), weight) for rows, weight in parts],
                                           n_permutations=self.n_permutations)

    def mean(self, rows: pd.DataFrame) -> Aggregate:
        return self.combine((rows, 1.0))


def _boot(rows: pd.DataFrame) -> np.ndarray | None:
    if "boot" not in rows or rows.empty:
        return None
    widths = {len(b) for b in rows["boot"]}
    if len(widths) != 1 or 0 in widths:
        return None
    return np.stack(rows["boot"].to_list())


def _finish(finding_id: int, effect: Aggregate, summary: str, details: pd.DataFrame) -> Finding:
    verdict = effect.verdict()
    raw = joint.raw_verdict(effect)
    if not effect.decisive:
        summary += f" Not decided: {effect.reason}."
    elif verdict == NOT_ENOUGH_DATA:
        summary += (" The 95% CI of the corrected effect includes 0, so these sentences cannot tell "
                    "either way: use more sentences (or languages) to decide.")
    if raw != verdict:
        summary += (f" Raw values (not corrected for chance) would say: {raw}, from baselines that "
                    f"differ by {effect.baseline:+.3f}.")
    return Finding(finding_id, TITLES[finding_id], verdict, summary, details, raw, effect)


def _agg_record(aggregate: Aggregate, **extra) -> dict:
    return {**extra, "value": aggregate.corrected, "ci_low": aggregate.low,
            "ci_high": aggregate.high, "raw": aggregate.raw, "baseline": aggregate.baseline,
            "n_rows": aggregate.n_rows}


# ------------------------------------------------------------------------------ selecting the rows


def _params_key(params) -> str:
    """A metric configuration, ignoring what the grid reports per row (SVCCA's chosen k_x, k_y)."""
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError:
            return params
    if isinstance(params, dict):
        return json.dumps({k: v for k, v in params.items() if k not in _REPORTED_PARAMS}, sort_keys=True)
    return str(params)


def metric_rows(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of ``metric`` with a value, one configuration (the most common), and each row's
    bootstrap values (``boot``, decoded from the store's ``resamples``; empty when not stored)."""
    rows = metrics[metrics["metric"] == metric]
    rows = rows[np.isfinite(rows["value"].astype(float))].copy()
    if rows.empty:
        return rows
    if "params" in rows:
        config = rows["params"].map(_params_key)
        rows = rows[config == config.value_counts().index[0]].copy()
    rows["depth"] = rows["depth"].astype(float).round(6)
    if "boot" not in rows:
        from core.store.vectors import as_blob, decode_resamples

        blobs = rows["resamples"] if "resamples" in rows else [None] * len(rows)
        rows["boot"] = [decode_resamples(as_blob(b)) for b in blobs]
    return rows


def adapted_points(rows: pd.DataFrame) -> dict[tuple[str, str], int]:
    """(text component, speech component) -> the first length-reducing speech layer, from the
    ``stage_b`` labels of same-language text-speech rows."""
    if rows.empty or "stage_b" not in rows:
        return {}
    text_speech = rows[(rows["pairing"] == "text-speech")
                       & rows["stage_b"].isin(LENGTH_REDUCING_STAGES)]
    found = text_speech.groupby(["component_a", "component_b"])["layer_b"].min()
    return {key: int(layer) for key, layer in found.items()}


@dataclass(frozen=True)
class _Parts:
    """The rows each finding reads: same-language text-speech and the two cross-lingual pairings."""

    text_component: str | None
    speech_component: str | None
    cross_modal: pd.DataFrame  # text-speech, same language, main components
    text_text: pd.DataFrame
    speech_speech: pd.DataFrame
    voice: pd.DataFrame  # speech-speech, same language: first voice vs second voice


def _parts(rows: pd.DataFrame) -> _Parts:
    empty = rows.iloc[0:0]
    if rows.empty:
        return _Parts(None, None, empty, empty, empty, empty)
    text_speech = rows[(rows["pairing"] == "text-speech") & (rows["lang_a"] == rows["lang_b"])]
    text_component = speech_component = None
    if not text_speech.empty:
        counts = text_speech.groupby(["component_a", "component_b"]).size()
        text_component, speech_component = counts.sort_values(ascending=False, kind="stable").index[0]
        text_speech = text_speech[(text_speech["component_a"] == text_component)
                                  & (text_speech["component_b"] == speech_component)]

    def same_modality(pairing: str, component: str | None) -> pd.DataFrame:
        found = rows[(rows["pairing"] == pairing) & (rows["lang_a"] != rows["lang_b"])]
        if found.empty:
            return found
        chosen = component if component in set(found["component_a"]) else \
            found["component_a"].value_counts().index[0]
        return found[(found["component_a"] == chosen) & (found["component_b"] == chosen)]

    speech_speech = same_modality("speech-speech", speech_component)
    voice = rows[(rows["pairing"] == "speech-speech") & (rows["lang_a"] == rows["lang_b"])]
    if not speech_speech.empty:
        voice = voice[voice["component_a"] == speech_speech["component_a"].iloc[0]]
    return _Parts(text_component, speech_component, text_speech,
                  same_modality("text-text", text_component), speech_speech, voice)


def _per_depth(rows: pd.DataFrame, ctx: _Context, series: str) -> pd.DataFrame:
    """Per depth: the corrected mean over languages with its joint interval, raw and baseline."""
    records = []
    for depth, group in rows.groupby("depth", sort=True):
        aggregate = ctx.mean(group)
        records.append(_agg_record(
            aggregate, depth=depth, layer_a=int(group["layer_a"].iloc[0]),
            layer_b=int(group["layer_b"].iloc[0]), series=series,
            length_baseline=float(pd.to_numeric(group["length_baseline"]).mean()),
            value_residualised=float(pd.to_numeric(group["value_residualised"]).mean()),
            n_langs=int(group["lang_a"].nunique())))
    return pd.DataFrame(records)


def _match_depths(depths_a, depths_b) -> list[tuple[float, float]]:
    """Pairs of depths, one per depth of the shorter list, the nearest on the other."""
    depths_a, depths_b = sorted(set(depths_a)), sorted(set(depths_b))
    if not depths_a or not depths_b:
        return []
    if len(depths_a) <= len(depths_b):
        return [(d, min(depths_b, key=lambda e: abs(e - d))) for d in depths_a]
    return [(min(depths_a, key=lambda e: abs(e - d)), d) for d in depths_b]


def _not_enough(finding_id: int, reason: str) -> Finding:
    return Finding(finding_id, TITLES[finding_id], NOT_ENOUGH_DATA, reason, raw_verdict=NOT_ENOUGH_DATA)


def _side_by_side(aggregate: Aggregate) -> str:
    """raw, baseline and corrected of one effect, in one phrase."""
    return (f"raw {aggregate.raw:+.3f}, shuffled baselines {aggregate.baseline:+.3f}, above "
            f"baseline {aggregate.text()}")


# ------------------------------------------------------------------------------------ the findings


def _convergence(parts: _Parts, metric: str, ctx: _Context) -> Finding:
    rows = parts.cross_modal
    if rows.empty:
        if metric in NEEDS_SHARED_SPACE:
            return _not_enough(1, f"{metric} compares coordinates, so it is defined only between "
                                  "text and speech points of one representation space; this run's "
                                  "text and speech components write into different spaces. Use "
                                  "SVCCA, CKA or mutual kNN.")
        return _not_enough(1, f"No same-language text-speech rows for {metric}: the run needs a text "
                              f"and a speech component over the same sentences.")
    early = rows[rows["depth"] <= EARLY_DEPTH + 1e-9]
    late = rows[rows["depth"] >= LATE_DEPTH - 1e-9]
    n_depths = rows["depth"].nunique()
    if n_depths < 3 or early.empty or late.empty:
        return _not_enough(1, f"Only {n_depths} layer depth(s) of text-speech {metric}; comparing "
                              f"first and last layers needs at least 3.")
    early_agg, late_agg = ctx.mean(early), ctx.mean(late)
    rise = ctx.combine((late, 1.0), (early, -1.0))
    summary = (f"Same-sentence text-speech {metric} ({parts.text_component} vs "
               f"{parts.speech_component}, mean over {rows['lang_a'].nunique()} languages): over the "
               f"first third of the layers raw {early_agg.raw:.3f} (shuffled baseline "
               f"{early_agg.baseline:.3f}), over the last third raw {late_agg.raw:.3f} (baseline "
               f"{late_agg.baseline:.3f}). Rise, last minus first third: {_side_by_side(rise)}.")
    details = _per_depth(rows, ctx, "text-speech, same language")
    return _finish(1, rise, summary, details)


def _length_adaptation(rows: pd.DataFrame, parts: _Parts, levels: dict[str, str], metric: str,
                       ctx: _Context) -> Finding:
    """Modality gap just before vs just after a length-reducing stage, per resource level.

    The speech path's points are labelled by stage: the first ``length_adaptor``/``pooler`` point is
    compared with the point before it, against the same text layer side. Narrowing of the gap (1 -
    similarity) = corrected similarity after minus before; "mostly for high-resource languages" =
    the high-resource narrowing minus the low-resource one, with its own interval.
    """
    if parts.text_component is None:
        return _not_enough(2, f"No same-language text-speech rows for {metric} to compare against.")
    candidates = adapted_points(rows)
    if not candidates:
        return _not_enough(2, "This run has no length-reducing stage on a compared speech path (such "
                              "as Seamless' length adaptor or Qwen2-Audio's pooling; Whisper has "
                              "none), so the effect of length adaptation cannot be measured.")
    (text_name, name), first = (
        ((parts.text_component, parts.speech_component), candidates[(parts.text_component,
                                                                     parts.speech_component)])
        if (parts.text_component, parts.speech_component) in candidates
        else next(iter(candidates.items())))
    own = rows[(rows["pairing"] == "text-speech") & (rows["lang_a"] == rows["lang_b"])
               & (rows["component_a"] == text_name) & (rows["component_b"] == name)]
    with_adaptation = own[own["layer_b"] == first]
    # against the same text layer on both sides of the adaptor (precompute pairs both with it)
    text_layer = with_adaptation["layer_a"].max()
    with_adaptation = with_adaptation[with_adaptation["layer_a"] == text_layer]
    plain = own[(own["layer_b"] == first - 1) & (own["layer_a"] == text_layer)]
    if plain.empty:  # older stores paired the point before only with its own aligned text layer
        plain = own[own["layer_b"] == first - 1]
    if plain.empty or with_adaptation.empty:
        return _not_enough(2, f"Missing same-language text-speech {metric} rows just before and "
                              f"after the length adaptation of {name} (layer {first}).")
    level_of = lambda frame: frame["lang_a"].map(levels).fillna("unknown")  # noqa: E731
    narrowing = ctx.combine((with_adaptation, 1.0), (plain, -1.0))
    records, by_level = [], {}
    for level in sorted(set(level_of(with_adaptation)), key=lambda v: _LEVEL_ORDER.get(v, 9)):
        after = with_adaptation[level_of(with_adaptation) == level]
        before = plain[level_of(plain) == level]
        common = set(after["lang_a"]) & set(before["lang_a"])
        after, before = after[after["lang_a"].isin(common)], before[before["lang_a"].isin(common)]
        if after.empty:
            continue
        by_level[level] = (after, before)
        for label, subset, speech_layer in (("without", before, first - 1), ("with", after, first)):
            records.append(_agg_record(ctx.mean(subset), resource_level=level, adaptation=label,
                                       component=f"{name} layer {speech_layer}",
                                       text_layer=int(text_layer), n_langs=len(common)))
        records.append(_agg_record(ctx.combine((after, 1.0), (before, -1.0)), resource_level=level,
                                   adaptation="narrowing (with minus without)",
                                   component=f"{name} layers {first - 1} to {first}",
                                   text_layer=int(text_layer), n_langs=len(common)))
    details = pd.DataFrame(records)
    summary = (f"Same-sentence text-speech {metric} at the speech output, just after vs just before "
               f"the length adaptation of {name} (layer {first}), against text layer {text_layer}: "
               f"the gap narrows by {_side_by_side(narrowing)} (a narrowing is a rise in "
               "similarity).")
    if "high" in by_level and "low" in by_level:
        (high_after, high_before), (low_after, low_before) = by_level["high"], by_level["low"]
        mostly_high = ctx.combine((high_after, 1.0), (high_before, -1.0), (low_after, -1.0),
                                  (low_before, 1.0))
        summary += (f" High- minus low-resource narrowing: {mostly_high.text()} "
                    f"({mostly_high.verdict()} that it is larger for high-resource languages).")
        details = pd.concat([details, pd.DataFrame([_agg_record(
            mostly_high, resource_level="high minus low", adaptation="narrowing difference",
            component=name, text_layer=int(text_layer), n_langs=0)])], ignore_index=True)
    else:
        summary += " (No high- and low-resource languages both: the per-level effect is undefined.)"
    return _finish(2, narrowing, summary, details)


def _speech_vs_text(parts: _Parts, metric: str, ctx: _Context) -> Finding:
    text, speech = parts.text_text, parts.speech_speech
    if text.empty or speech.empty:
        return _not_enough(3, f"Needs cross-lingual text-text and speech-speech {metric} rows (at "
                              f"least two languages with text and speech).")
    matched = []
    for depth_text, depth_speech in _match_depths(text["depth"], speech["depth"]):
        at_text = text[text["depth"] == depth_text]
        at_speech = speech[speech["depth"] == depth_speech]
        common = set(zip(at_text["lang_a"], at_text["lang_b"])) & \
            set(zip(at_speech["lang_a"], at_speech["lang_b"]))
        if not common:
            continue
        keep = lambda frame: frame[[pair in common for pair in zip(frame["lang_a"],  # noqa: E731
                                                                   frame["lang_b"])]]
        matched.append((depth_text, depth_speech, keep(at_text), keep(at_speech)))
    if not matched:
        return _not_enough(3, f"No language pair has both text-text and speech-speech {metric} rows.")
    weight = 1.0 / len(matched)
    overall = ctx.combine(*[(t, weight) for _, _, t, _ in matched],
                          *[(sp, -weight) for _, _, _, sp in matched])
    records = []
    for depth_text, depth_speech, at_text, at_speech in matched:
        records.append(_agg_record(ctx.mean(at_text), depth=depth_text, series="text-text",
                                   n_lang_pairs=len(at_text)))
        records.append(_agg_record(ctx.mean(at_speech), depth=depth_text, series="speech-speech",
                                   n_lang_pairs=len(at_speech)))
        records.append(_agg_record(ctx.combine((at_text, 1.0), (at_speech, -1.0)), depth=depth_text,
                                   series="text minus speech", n_lang_pairs=len(at_text)))
    summary = (f"Cross-lingual {metric}, text ({parts.text_component}) minus speech "
               f"({parts.speech_component}), averaged over {len(matched)} depths and "
               f"{max(len(t) for _, _, t, _ in matched)} language pairs: {_side_by_side(overall)}.")
    voice, language_beyond_voice = parts.voice, None
    if not voice.empty:
        voice_langs = sorted(set(voice["lang_a"]))
        by_depth = []
        for depth, group in voice.groupby("depth", sort=True):
            cross = speech[(speech["depth"] == depth) & speech["lang_a"].isin(voice_langs)
                           & speech["lang_b"].isin(voice_langs)]
            records.append(_agg_record(ctx.mean(group), depth=depth,
                                       series="speech, same language, another voice",
                                       n_lang_pairs=len(group)))
            if not cross.empty:
                by_depth.append((group, cross))
        if by_depth:
            w = 1.0 / len(by_depth)
            voice_mean = ctx.combine(*[(g, w) for g, _ in by_depth])
            language_beyond_voice = ctx.combine(*[(g, w) for g, _ in by_depth],
                                                *[(c, -w) for _, c in by_depth])
            summary += (f" Voice reference ({len(voice_langs)} languages with a second voice): the "
                        f"same sentence in another voice scores {voice_mean.raw:.3f} raw "
                        f"({voice_mean.text(signed=False)} above baseline); another language lowers "
                        f"speech similarity by {language_beyond_voice.text()} more than a change of "
                        "voice alone.")
    found = _finish(3, overall, summary, pd.DataFrame(records))
    return replace(found, voice_effect=language_beyond_voice)


def _gaps(parts: _Parts, metric: str, ctx: _Context) -> Finding:
    cross_modal, text = parts.cross_modal, parts.text_text
    if cross_modal.empty or text.empty:
        return _not_enough(4, f"Needs same-language text-speech rows and cross-lingual text-text rows "
                              f"for {metric} (at least two languages).")
    matched = [(depth_modal, cross_modal[cross_modal["depth"] == depth_modal],
                text[text["depth"] == depth_text])
               for depth_modal, depth_text in _match_depths(cross_modal["depth"], text["depth"])]
    weight = 1.0 / len(matched)
    # modality gap minus language gap = (1 - text-speech) - (1 - text-text) = text-text - text-speech
    overall = ctx.combine(*[(t, weight) for _, _, t in matched],
                          *[(m, -weight) for _, m, _ in matched])
    records = []
    for depth, at_modal, at_text in matched:
        for series, rows_ in (("text-speech, same language", at_modal),
                              ("text-text, cross-lingual", at_text)):
            records.append(_agg_record(ctx.mean(rows_), depth=depth, series=series))
        records.append(_agg_record(ctx.combine((at_text, 1.0), (at_modal, -1.0)), depth=depth,
                                   series="modality gap minus language gap"))
    larger = "modality gap" if overall.corrected > 0 else "language gap"
    summary = (f"Mean over {len(matched)} depths: modality gap (1 - same-sentence text-speech "
               f"{metric}) {1 - ctx.mean(cross_modal).raw:.3f} raw, language gap (1 - cross-lingual "
               f"text-text {metric}) {1 - ctx.mean(text).raw:.3f} raw. Modality gap minus language "
               f"gap (= text-text minus text-speech similarity): {_side_by_side(overall)}; above "
               f"chance the {larger} is larger.")
    return _finish(4, overall, summary, pd.DataFrame(records))


def run_levels(languages: pd.DataFrame, run_languages: pd.DataFrame | None) -> pd.DataFrame:
    """lang, resource_level (and level_source) a run's findings read: the run's own levels
    (``Store.run_languages``: its family's, or Whisper's as a labelled proxy) where recorded, else
    the store's language table (Whisper's training hours)."""
    if run_languages is not None and not run_languages.empty:
        return run_languages[[c for c in ("lang", "resource_level", "level_source")
                              if c in run_languages]].reset_index(drop=True)
    return languages


def compute_findings(metrics: pd.DataFrame, languages: pd.DataFrame, components: pd.DataFrame, *,
                     metric: str = "svcca", n_permutations: int | None = None) -> list[Finding]:
    """The four findings for one run's metrics table (columns of the store's ``metrics`` table, with
    ``resamples`` for intervals); ``languages``: lang and resource_level (the run's own levels,
    ``Store.run_languages``, where it has them); ``n_permutations``: the run's, for the baselines'
    own uncertainty."""
    rows = metric_rows(metrics, metric) if metrics is not None and not metrics.empty else pd.DataFrame()
    if rows.empty:
        known = sorted(metrics["metric"].unique()) if metrics is not None and "metric" in metrics else []
        reason = (f"No rows with a value for metric {metric!r}"
                  + (f" (this run has: {', '.join(known)})." if known else "."))
        return [_not_enough(i, reason) for i in TITLES]
    ctx = _Context(n_permutations)
    levels = dict(zip(languages["lang"], languages["resource_level"])) \
        if languages is not None and not languages.empty else {}
    parts = _parts(rows)
    return [_convergence(parts, metric, ctx),
            _length_adaptation(rows, parts, levels, metric, ctx),
            _speech_vs_text(parts, metric, ctx), _gaps(parts, metric, ctx)]


def pair_family(pairing: str, lang_a: str, lang_b: str) -> str:
    """The comparison a metric row belongs to, as the findings read it."""
    same = lang_a == lang_b
    if pairing == "text-speech":
        return "text-speech, same language" if same else "text-speech, cross-lingual"
    if pairing == "speech-speech" and same:
        return "speech, same language, another voice"
    return f"{pairing}, cross-lingual"


def _families(rows: pd.DataFrame) -> pd.Series:
    return pd.Series([pair_family(p, a, b) for p, a, b in
                      zip(rows["pairing"], rows["lang_a"], rows["lang_b"])], index=rows.index,
                     dtype=object)


def k_sensitivity(variants: pd.DataFrame) -> pd.DataFrame:
    """SVCCA and its shuffled baseline against k, per comparison family (means over pairs and
    layers), with ``warn`` where the baseline reaches ``BASELINE_WARN_FRACTION`` of the value: there
    SVCCA says little beyond chance at that k and n."""
    columns = ["family", "k", "value", "baseline", "above_baseline", "n_rows", "n_samples", "warn"]
    rows = variants[variants["variant"] == "svcca_k"] if variants is not None and not variants.empty \
        else pd.DataFrame()
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.assign(family=_families(rows), k=[int(json.loads(p)["k"]) for p in rows["params"]])
    rows = rows[np.isfinite(pd.to_numeric(rows["value"], errors="coerce"))]
    table = rows.groupby(["family", "k"], sort=True).agg(
        value=("value", "mean"), baseline=("baseline_mean", "mean"), n_rows=("value", "size"),
        n_samples=("n_samples", "max")).reset_index()
    table["above_baseline"] = table["value"] - table["baseline"]
    table["warn"] = table["baseline"] >= BASELINE_WARN_FRACTION * table["value"]
    return table[columns]


def length_matched_summary(metrics: pd.DataFrame, variants: pd.DataFrame,
                           metric: str = "svcca") -> pd.DataFrame:
    """Per comparison family: the mean of value - baseline on all sentences (the main rows) and on
    the length-matched sentences only (``metric_variants``), with how many sentences were kept: how
    much of an effect survives when length cannot carry it."""
    columns = ["family", "all_sentences", "length_matched", "n_all", "n_matched", "n_pairs"]
    if variants is None or variants.empty or metrics is None or metrics.empty:
        return pd.DataFrame(columns=columns)
    matched = variants[variants["variant"] == "length_matched"]
    full = metric_rows(metrics, metric)
    if matched.empty or full.empty:
        return pd.DataFrame(columns=columns)
    key = ["pairing", "component_a", "component_b", "layer_a", "layer_b", "lang_a", "lang_b"]
    both = full[key + ["value", "baseline_mean", "n_samples"]].merge(
        matched[key + ["value", "baseline_mean", "n_samples"]], on=key, suffixes=("", "_matched"))
    if both.empty:
        return pd.DataFrame(columns=columns)
    both["family"] = _families(both)
    both["all_sentences"] = both["value"] - both["baseline_mean"]
    both["length_matched"] = both["value_matched"] - both["baseline_mean_matched"]
    table = both.groupby("family", sort=True).agg(
        all_sentences=("all_sentences", "mean"), length_matched=("length_matched", "mean"),
        n_all=("n_samples", "max"), n_matched=("n_samples_matched", "median"),
        n_pairs=("value", "size")).reset_index()
    return table[columns]


def format_findings(findings: list[Finding]) -> str:
    """Plain text: each finding's verdict (and the raw one where it differs), summary and details."""
    blocks = []
    for finding in findings:
        raw = (f" (raw values: {finding.raw_verdict})"
               if finding.raw_verdict and finding.raw_verdict != finding.verdict else "")
        lines = [f"{finding.id}. {finding.title}: {finding.verdict.upper()}{raw}",
                 f"   {finding.summary}"]
        if finding.details is not None and not finding.details.empty:
            table = finding.details.to_string(index=False, float_format=lambda v: f"{v:.3f}")
            lines += ["   " + line for line in table.splitlines()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
