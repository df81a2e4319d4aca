"""The reference study's four findings, re-checked on a run's metrics table (pure pandas).

Lee et al. (2024, arXiv:2411.17666) report that, in multimodal models:
1. text-speech similarity of the same sentence rises over layers, after modality-specific early layers;
2. length adaptation narrows the modality gap, mostly for high-resource languages;
3. speech is less similar across languages than text;
4. the modality gap is larger than the language gap.
``compute_findings`` turns a metrics table into a verdict per finding with the numbers behind it, so a
reader can see at once whether this run agrees, disagrees, or cannot tell.

Uncertainty: every metrics row carries a bootstrap CI over sentences; its width gives a standard error
(SE = width / (2 x 1.96), the grid's CIs being 95%). A mean over languages or layers gets the mean of
the SEs (exact if their errors are fully correlated -- they share sentences -- and conservative
otherwise); a difference between two such means gets sqrt(SE1^2 + SE2^2). Intervals reported here are
estimate +/- 1.96 SE.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

HOLDS, DOES_NOT_HOLD, NOT_ENOUGH_DATA = "holds", "does not hold", "not enough data"
Z_95 = 1.959963984540054
#: Stage labels of points whose output is shorter than their input (``core.models.base``): Seamless'
#: length adaptor, Qwen2-Audio's pooling, SONAR's attention pooler. Findings read these labels (the
#: metric rows' ``stage_b``), never free-text descriptions.
LENGTH_REDUCING_STAGES = frozenset({"length_adaptor", "pooler"})
#: Metrics that compare coordinates: never stored across representation spaces.
NEEDS_SHARED_SPACE = frozenset({"paired_cosine", "retrieval"})
#: Depth thirds compared in finding 1.
EARLY_DEPTH, LATE_DEPTH = 1 / 3, 2 / 3
_TITLES = {
    1: "Text-speech similarity rises over layers after the modality-specific first layers",
    2: "Length adaptation narrows the modality gap",
    3: "Speech is less similar across languages than text",
    4: "The modality gap is larger than the language gap",
}
_REPORTED_PARAMS = {"k_x", "k_y"}
_LEVEL_ORDER = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class Finding:
    """One finding: a verdict ("holds", "does not hold", "not enough data"), a sentence or two with
    the numbers, and the per-layer / per-level numbers behind it."""

    id: int
    title: str
    verdict: str
    summary: str
    details: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class _Estimate:
    value: float
    se: float

    @property
    def low(self) -> float:
        return self.value - Z_95 * self.se

    @property
    def high(self) -> float:
        return self.value + Z_95 * self.se

    def __sub__(self, other: _Estimate) -> _Estimate:
        return _Estimate(self.value - other.value, math.hypot(self.se, other.se))

    def gap(self) -> _Estimate:
        """1 - similarity."""
        return _Estimate(1.0 - self.value, self.se)

    def text(self, signed: bool = False) -> str:
        number = f"{self.value:+.3f}" if signed else f"{self.value:.3f}"
        if not math.isfinite(self.se):
            return f"{number} (no CI)"
        return f"{number} [95% CI {self.low:.3f}, {self.high:.3f}]"


def _mean_estimate(values, ses) -> _Estimate:
    """Mean of values, with the mean of their (finite) SEs; see the module docstring."""
    values, ses = np.asarray(values, dtype=float), np.asarray(ses, dtype=float)
    finite_se = ses[np.isfinite(ses)]
    return _Estimate(float(values.mean()), float(finite_se.mean()) if finite_se.size else math.nan)


def _average(estimates: list[_Estimate]) -> _Estimate:
    return _mean_estimate([e.value for e in estimates], [e.se for e in estimates])


def _verdict(estimate: _Estimate) -> str:
    """Holds when the 95% interval lies above 0, does not hold when it lies below; an interval
    that straddles 0 cannot tell either way with these sentences."""
    if not math.isfinite(estimate.se):
        return NOT_ENOUGH_DATA
    if estimate.low > 0:
        return HOLDS
    if estimate.high < 0:
        return DOES_NOT_HOLD
    return NOT_ENOUGH_DATA


def _undecided_note(estimate: _Estimate) -> str:
    if _verdict(estimate) != NOT_ENOUGH_DATA:
        return ""
    return (" The 95% CI includes 0, so these sentences cannot tell either way: use more sentences "
            "(or languages) to decide.")


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


def _metric_rows(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of ``metric`` with a value, one configuration (the most common), and an SE per row."""
    rows = metrics[metrics["metric"] == metric]
    rows = rows[np.isfinite(rows["value"].astype(float))].copy()
    if rows.empty:
        return rows
    if "params" in rows:
        config = rows["params"].map(_params_key)
        rows = rows[config == config.value_counts().index[0]].copy()
    rows["se"] = (rows["ci_high"].astype(float) - rows["ci_low"].astype(float)) / (2 * Z_95)
    rows["depth"] = rows["depth"].astype(float).round(6)
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


def _parts(rows: pd.DataFrame) -> _Parts:
    empty = rows.iloc[0:0]
    if rows.empty:
        return _Parts(None, None, empty, empty, empty)
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

    return _Parts(text_component, speech_component, text_speech,
                  same_modality("text-text", text_component),
                  same_modality("speech-speech", speech_component))


def _per_depth(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean over languages per depth, with the SE of that mean and the baselines."""
    grouped = rows.groupby("depth", sort=True)
    table = grouped.agg(layer_a=("layer_a", "first"), layer_b=("layer_b", "first"),
                        value=("value", "mean"), baseline_mean=("baseline_mean", "mean"),
                        length_baseline=("length_baseline", "mean"),
                        value_residualised=("value_residualised", "mean"),
                        n=("value", "size")).reset_index()
    table["se"] = [_mean_estimate(group["value"], group["se"]).se for _, group in grouped]
    table["ci_low"] = table["value"] - Z_95 * table["se"]
    table["ci_high"] = table["value"] + Z_95 * table["se"]
    return table


def _match_depths(depths_a, depths_b) -> list[tuple[float, float]]:
    """Pairs of depths, one per depth of the shorter list, the nearest on the other."""
    depths_a, depths_b = sorted(set(depths_a)), sorted(set(depths_b))
    if not depths_a or not depths_b:
        return []
    if len(depths_a) <= len(depths_b):
        return [(d, min(depths_b, key=lambda e: abs(e - d))) for d in depths_a]
    return [(min(depths_a, key=lambda e: abs(e - d)), d) for d in depths_b]


def _not_enough(finding_id: int, reason: str) -> Finding:
    return Finding(finding_id, _TITLES[finding_id], NOT_ENOUGH_DATA, reason)


# ------------------------------------------------------------------------------------ the findings


def _convergence(parts: _Parts, metric: str) -> Finding:
    rows = parts.cross_modal
    if rows.empty:
        if metric in NEEDS_SHARED_SPACE:
            return _not_enough(1, f"{metric} compares coordinates, so it is defined only between "
                                  "text and speech points of one representation space; this run's "
                                  "text and speech components write into different spaces. Use "
                                  "SVCCA, CKA or mutual kNN.")
        return _not_enough(1, f"No same-language text-speech rows for {metric}: the run needs a text "
                              f"and a speech component over the same sentences.")
    table = _per_depth(rows)
    early, late = table[table["depth"] <= EARLY_DEPTH + 1e-9], table[table["depth"] >= LATE_DEPTH - 1e-9]
    if len(table) < 3 or early.empty or late.empty:
        return _not_enough(1, f"Only {len(table)} layer depth(s) of text-speech {metric}; comparing "
                              f"first and last layers needs at least 3.")
    early_estimate = _mean_estimate(early["value"], early["se"])
    late_estimate = _mean_estimate(late["value"], late["se"])
    rise = late_estimate - early_estimate
    summary = (f"Same-sentence text-speech {metric} ({parts.text_component} vs "
               f"{parts.speech_component}, mean over {rows['lang_a'].nunique()} languages) is "
               f"{early_estimate.text()} over the first third of the layers and "
               f"{late_estimate.text()} over the last third, a change of {rise.text(signed=True)}; "
               f"the shuffled-pairs baseline in the last third is {late['baseline_mean'].mean():.3f}.")
    verdict = _verdict(rise)
    summary += _undecided_note(rise)
    details = table.assign(series="text-speech, same language")[
        ["depth", "layer_a", "layer_b", "series", "value", "ci_low", "ci_high", "baseline_mean",
         "length_baseline", "value_residualised", "n"]].rename(columns={"n": "n_langs"})
    return Finding(1, _TITLES[1], verdict, summary, details)


def _length_adaptation(rows: pd.DataFrame, parts: _Parts, languages: pd.DataFrame,
                       metric: str) -> Finding:
    """Modality gap just before vs just after a length-reducing stage, per resource level.

    The speech path's points are labelled by stage: the first ``length_adaptor``/``pooler`` point is
    compared with the point before it, against the same text layer side.
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
    levels = dict(zip(languages["lang"], languages["resource_level"])) \
        if languages is not None and not languages.empty else {}
    records, overall = [], {}
    for label, subset in (("without", plain), ("with", with_adaptation)):
        overall[label] = _mean_estimate(subset["value"], subset["se"]).gap()
        for level, group in subset.groupby(subset["lang_a"].map(levels).fillna("unknown")):
            gap = _mean_estimate(group["value"], group["se"]).gap()
            speech_layer = int(group["layer_b"].iloc[0])
            records.append({"resource_level": level, "adaptation": label,
                            "component": f"{group['component_b'].iloc[0]} layer {speech_layer}",
                            "text_layer": int(group["layer_a"].iloc[0]), "gap": gap.value,
                            "ci_low": gap.low, "ci_high": gap.high,
                            "n_langs": group["lang_a"].nunique()})
    narrowing = overall["without"] - overall["with"]
    details = pd.DataFrame(records)
    details = details.assign(order=details["resource_level"].map(_LEVEL_ORDER).fillna(len(_LEVEL_ORDER)))
    details = details.sort_values(["order", "adaptation"], ascending=[True, False]) \
        .drop(columns="order").reset_index(drop=True)
    gaps = details.pivot(index="resource_level", columns="adaptation", values="gap")
    per_level = "; ".join(f"{level} {gaps.loc[level, 'with']:.3f} vs {gaps.loc[level, 'without']:.3f}"
                          for level in details["resource_level"].unique())
    summary = (f"Modality gap (1 - same-sentence text-speech {metric}) at the speech output: "
               f"{overall['with'].text()} with length adaptation ({name}) vs "
               f"{overall['without'].text()} without, narrowed by {narrowing.text(signed=True)}. "
               f"Per resource level, with vs without: {per_level}.")
    verdict = _verdict(narrowing)
    summary += _undecided_note(narrowing)
    return Finding(2, _TITLES[2], verdict, summary, details)


def _speech_vs_text(parts: _Parts, metric: str) -> Finding:
    text, speech = parts.text_text, parts.speech_speech
    if text.empty or speech.empty:
        return _not_enough(3, f"Needs cross-lingual text-text and speech-speech {metric} rows (at "
                              f"least two languages with text and speech).")
    records, differences = [], []
    for depth_text, depth_speech in _match_depths(text["depth"], speech["depth"]):
        at_text = text[text["depth"] == depth_text].set_index(["lang_a", "lang_b"])
        at_speech = speech[speech["depth"] == depth_speech].set_index(["lang_a", "lang_b"])
        common = at_text.index.intersection(at_speech.index)
        if common.empty:
            continue
        text_estimate = _mean_estimate(at_text.loc[common, "value"], at_text.loc[common, "se"])
        speech_estimate = _mean_estimate(at_speech.loc[common, "value"], at_speech.loc[common, "se"])
        difference = text_estimate - speech_estimate
        differences.append(difference)
        for series, estimate in (("text-text", text_estimate), ("speech-speech", speech_estimate),
                                 ("text minus speech", difference)):
            records.append({"depth": depth_text, "series": series, "value": estimate.value,
                            "ci_low": estimate.low, "ci_high": estimate.high,
                            "n_lang_pairs": len(common)})
    if not differences:
        return _not_enough(3, f"No language pair has both text-text and speech-speech {metric} rows.")
    overall = _average(differences)
    details = pd.DataFrame(records)
    means = details.groupby("series")["value"].mean()
    summary = (f"Averaged over {len(differences)} depths and {details['n_lang_pairs'].max()} language "
               f"pairs, cross-lingual {metric} is {means['text-text']:.3f} for text "
               f"({parts.text_component}) and {means['speech-speech']:.3f} for speech "
               f"({parts.speech_component}); text minus speech = {overall.text(signed=True)}.")
    verdict = _verdict(overall)
    summary += _undecided_note(overall)
    return Finding(3, _TITLES[3], verdict, summary, details)


def _gaps(parts: _Parts, metric: str) -> Finding:
    cross_modal, text = parts.cross_modal, parts.text_text
    if cross_modal.empty or text.empty:
        return _not_enough(4, f"Needs same-language text-speech rows and cross-lingual text-text rows "
                              f"for {metric} (at least two languages).")
    records, differences = [], []
    for depth_modal, depth_text in _match_depths(cross_modal["depth"], text["depth"]):
        at_modal = cross_modal[cross_modal["depth"] == depth_modal]
        at_text = text[text["depth"] == depth_text]
        modality_gap = _mean_estimate(at_modal["value"], at_modal["se"]).gap()
        language_gap = _mean_estimate(at_text["value"], at_text["se"]).gap()
        differences.append(modality_gap - language_gap)
        for series, estimate in (("modality gap", modality_gap), ("language gap", language_gap)):
            records.append({"depth": depth_modal, "series": series, "gap": estimate.value,
                            "ci_low": estimate.low, "ci_high": estimate.high})
    overall = _average(differences)
    details = pd.DataFrame(records)
    means = details.groupby("series")["gap"].mean()
    larger = "modality gap" if overall.value > 0 else "language gap"
    summary = (f"Mean over {len(differences)} depths: modality gap (1 - same-sentence text-speech "
               f"{metric}) {means['modality gap']:.3f}, language gap (1 - cross-lingual text-text "
               f"{metric}) {means['language gap']:.3f}; the {larger} is larger by "
               f"{abs(overall.value):.3f} (difference {overall.text(signed=True)}).")
    verdict = _verdict(overall)
    summary += _undecided_note(overall)
    return Finding(4, _TITLES[4], verdict, summary, details)


def compute_findings(metrics: pd.DataFrame, languages: pd.DataFrame, components: pd.DataFrame, *,
                     metric: str = "svcca") -> list[Finding]:
    """The four findings for one run's metrics table (columns of the store's ``metrics`` table)."""
    rows = _metric_rows(metrics, metric) if metrics is not None and not metrics.empty else pd.DataFrame()
    if rows.empty:
        known = sorted(metrics["metric"].unique()) if metrics is not None and "metric" in metrics else []
        reason = (f"No rows with a value for metric {metric!r}"
                  + (f" (this run has: {', '.join(known)})." if known else "."))
        return [_not_enough(i, reason) for i in _TITLES]
    parts = _parts(rows)
    return [_convergence(parts, metric),
            _length_adaptation(rows, parts, languages, metric),
            _speech_vs_text(parts, metric), _gaps(parts, metric)]


def format_findings(findings: list[Finding]) -> str:
    """Plain text: each finding's verdict, summary and details table."""
    blocks = []
    for finding in findings:
        lines = [f"{finding.id}. {finding.title}: {finding.verdict.upper()}", f"   {finding.summary}"]
        if finding.details is not None and not finding.details.empty:
            table = finding.details.to_string(index=False, float_format=lambda v: f"{v:.3f}")
            lines += ["   " + line for line in table.splitlines()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
