"""A verdict per metric and control for each of the study's findings, and the headline they allow.

One metric and one way of reading it can say "holds" where another says the opposite (on the
bundled store, finding 3 holds under SVCCA and reverses under both CKAs). So each finding of
``core.findings`` is evaluated in a small table: every stored metric that applies (SVCCA, linear
and debiased CKA, mutual kNN) under every control the run has:

- **raw**: the metric rows themselves (value minus their shuffled-pairs baseline, ``core.findings``);
- **length-residualised**: each row's ``value_residualised`` (the metric after regressing a smooth
  function of log length out of both sides) in place of its value. The store keeps neither a
  shuffled baseline nor bootstrap values for it, so the cell subtracts the raw rows' baseline and
  takes its interval from the raw rows' resamples shifted by each row's residualisation (the same
  sentences, the same spread): an approximation, said in the cell's note;
- **length-matched**: the ``metric_variants`` rows on the sentences of near-median length on both
  sides (stored for SVCCA only), with their own baselines; no bootstrap is stored for them, so the
  interval is the raw rows' resample spread widened by sqrt(n / n matched), also said in the note;
- **voice reference** (finding 3 only): how much more a change of language lowers speech similarity
  than a change of voice alone (same sentence, same language, the second espeak-ng voice).

Every interval is a 95% interval over sentence resamples *within this corpus*: it says how much the
estimate would move with other sentences drawn like these, nothing about other corpora, voices or
recordings (``INTERVAL_SCOPE``).

The headline rule. Cells that decide ("holds" / "does not hold") must agree:

- all decided cells agree -> that verdict (undecided cells are listed, they do not break agreement);
- decided cells disagree -> "mixed", naming the cells on each side;
- no cell decides -> "not enough data" (more sentences or languages could decide);
- the model has no such stage or modality -> "not applicable" (no data could decide): finding 2
  without a length-reducing stage (Whisper), every finding on a run without speech.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core import findings
from core.metrics.descriptions import display_name
from core.metrics.joint import DOES_NOT_HOLD, HOLDS, MIN_SENTENCES, NOT_ENOUGH_DATA, Aggregate
from core.models.base import LENGTH_REDUCING_STAGES

MIXED, NOT_APPLICABLE = "mixed", "not applicable"
#: The metrics whose verdicts are tabulated, in this order (cosine and retrieval need one space).
VERDICT_METRICS: tuple[str, ...] = ("svcca", "linear_cka", "cka_debiased", "mutual_knn")
RAW, RESIDUALISED, LENGTH_MATCHED, VOICE = ("raw", "length-residualised", "length-matched",
                                            "voice reference")
CONTROLS: tuple[str, ...] = (RAW, RESIDUALISED, LENGTH_MATCHED, VOICE)
INTERVAL_SCOPE = "95% interval, sentence resampling within this corpus"
#: What each control's effect and interval are, in one line (the table's note column).
CONTROL_NOTES: dict[str, str] = {
    RAW: "value − shuffled baseline; joint bootstrap",
    RESIDUALISED: "residualised value − raw shuffled baseline; spread of the raw rows' resamples "
                  "(no residualised resamples stored)",
    LENGTH_MATCHED: "near-median-length sentences, own baselines; raw rows' resample spread × "
                    "√(n / n matched) (no resamples stored)",
    VOICE: "same language in another voice − another language (speech): a change of language "
           "lowers similarity more than a change of voice",
}
TABLE_COLUMNS = ["metric", "control", "effect", "ci_low", "ci_high", "verdict", "note"]
_KEY = ["pairing", "component_a", "component_b", "layer_a", "layer_b", "lang_a", "lang_b"]


@dataclass(frozen=True)
class FindingVerdict:
    """One finding's headline verdict, why (the cells that disagree or decide nothing), its table
    of metric x control cells (``TABLE_COLUMNS``), the controls and metrics it could not use, and
    the single-metric ``core.findings.Finding`` of the detail metric (figures, summary)."""

    id: int
    title: str
    headline: str
    reason: str
    cells: pd.DataFrame
    missing: list[str] = field(default_factory=list)
    detail: findings.Finding | None = None
    detail_metric: str = ""


# ------------------------------------------------------------------------------------- applicability


def not_applicable(metrics: pd.DataFrame, components: pd.DataFrame | None) -> dict[int, str]:
    """finding id -> why it cannot apply to this model (no data could decide it); absent if it can.

    A run without a speech component has none of the four; a run whose metric rows label no point
    with a length-reducing stage (``LENGTH_REDUCING_STAGES``) has no finding 2. Rows without stage
    labels (older stores) say nothing either way, so finding 2 is left to the data there.
    """
    if components is not None and "modality" in components and not components.empty:
        has_speech = bool((components["modality"] == "speech").any())
    else:
        has_speech = metrics is not None and any(
            column in metrics and bool((metrics[column] == "speech").any())
            for column in ("modality_a", "modality_b"))
    if not has_speech:
        return {i: "This model reads only text: every finding compares speech with text or speech "
                   "across languages." for i in findings.TITLES}
    stages = [metrics[c] for c in ("stage_a", "stage_b") if metrics is not None and c in metrics]
    if stages and not any(s.isin(LENGTH_REDUCING_STAGES).any() for s in stages):
        return {2: "This model has no length-reducing stage on its speech path (such as Seamless' "
                   "length adaptor or Qwen2-Audio's pooling; Whisper has none): there is no length "
                   "adaptation to measure."}
    return {}


# -------------------------------------------------------------------------------- the control rows


def residualised_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """``metric_rows`` with ``value_residualised`` as the value and each row's resamples shifted by
    the same amount (the raw baseline and spread stand in for the residualised ones)."""
    if rows.empty or "value_residualised" not in rows:
        return rows.iloc[0:0]
    out = rows[np.isfinite(pd.to_numeric(rows["value_residualised"], errors="coerce"))].copy()
    shift = out["value_residualised"].astype(float) - out["value"].astype(float)
    out["boot"] = [np.asarray(b, dtype=np.float64) + s for b, s in zip(out["boot"], shift)]
    out["value"] = out["value_residualised"].astype(float)
    return out


def length_matched_rows(rows: pd.DataFrame, variants: pd.DataFrame | None) -> pd.DataFrame:
    """The length-matched variant of each raw row (``metric_rows``) that has one: its value and
    baselines, the raw row's stage labels, and the raw row's resample deviations widened by
    sqrt(n / n matched) as its bootstrap. Subsets under ``MIN_SENTENCES`` sentences are left out.
    ``params`` becomes one string: a subset's own k is not another configuration."""
    if rows.empty or variants is None or variants.empty:
        return rows.iloc[0:0]
    matched = variants[(variants["variant"] == "length_matched")
                       & (variants["metric"] == rows["metric"].iloc[0])]
    matched = matched[np.isfinite(pd.to_numeric(matched["value"], errors="coerce"))
                      & (pd.to_numeric(matched["n_samples"]) >= MIN_SENTENCES)]
    if matched.empty:
        return rows.iloc[0:0]
    both = rows.merge(matched[_KEY + ["value", "baseline_mean", "baseline_std", "n_samples"]],
                      on=_KEY, suffixes=("_raw", ""))
    if both.empty:
        return rows.iloc[0:0]
    widen = np.sqrt(both["n_samples_raw"].astype(float) / both["n_samples"].astype(float))
    both["boot"] = [v + w * (np.asarray(b, dtype=np.float64) - v_raw) for b, v, v_raw, w in
                    zip(both["boot"], both["value"].astype(float), both["value_raw"].astype(float),
                        widen)]
    both["n_samples"] = both["n_samples_raw"]  # they share the raw rows' resamples
    both["params"] = "length_matched"
    both["length_baseline"] = both["value_residualised"] = math.nan
    return both


# ----------------------------------------------------------------------------------- the cells


def _cell(metric: str, control: str, effect: Aggregate | None, reason: str = "") -> dict:
    if effect is None:
        return {"metric": display_name(metric), "control": control, "effect": math.nan,
                "ci_low": math.nan, "ci_high": math.nan, "verdict": NOT_ENOUGH_DATA,
                "note": reason}
    note = CONTROL_NOTES[control] if effect.decisive else effect.reason
    finite = math.isfinite(effect.se)
    return {"metric": display_name(metric), "control": control, "effect": effect.corrected,
            "ci_low": effect.low if finite else math.nan,
            "ci_high": effect.high if finite else math.nan,
            "verdict": effect.verdict(), "note": note}


def _first_line(summary: str) -> str:
    return summary.split(". ")[0].rstrip(".")


def headline(cells: pd.DataFrame) -> tuple[str, str]:
    """(verdict, why) from a finding's cells by the module's rule: decided cells must agree;
    undecided cells are listed and do not break agreement; none decided: not enough data."""
    if cells.empty:
        return NOT_ENOUGH_DATA, "No metric of this run could be evaluated."
    names = [f"{m} / {c}" for m, c in zip(cells["metric"], cells["control"])]
    by_verdict: dict[str, list[str]] = {}
    for name, verdict in zip(names, cells["verdict"]):
        by_verdict.setdefault(verdict, []).append(name)
    undecided = by_verdict.get(NOT_ENOUGH_DATA, [])
    tail = f" Undecided: {', '.join(undecided)}." if undecided else ""
    holds, does_not = by_verdict.get(HOLDS, []), by_verdict.get(DOES_NOT_HOLD, [])
    if holds and does_not:
        return MIXED, (f"The metrics and controls disagree. Holds: {', '.join(holds)}. "
                       f"Does not hold: {', '.join(does_not)}.{tail}")
    if holds or does_not:
        verdict, agreeing = (HOLDS, holds) if holds else (DOES_NOT_HOLD, does_not)
        return verdict, f"All {len(agreeing)} decided cells agree: {verdict}.{tail}"
    return NOT_ENOUGH_DATA, f"No cell decides (every interval includes 0 or lacks evidence).{tail}"


def evaluate(metrics: pd.DataFrame, languages: pd.DataFrame, components: pd.DataFrame | None,
             variants: pd.DataFrame | None = None, *, detail_metric: str = "svcca",
             n_permutations: int | None = None) -> list[FindingVerdict]:
    """The four findings, each under every metric of ``VERDICT_METRICS`` the run has and every
    control it stores, with the headline verdict. ``metrics``: the run's rows of all metrics with
    ``resamples`` (``Store.metrics(run_id, with_resamples=True)``); ``variants``: its
    ``metric_variants``; ``detail_metric``: whose single-metric finding is kept as ``detail``."""
    metrics = metrics if metrics is not None else pd.DataFrame()
    present = set(metrics["metric"]) if "metric" in metrics else set()
    inapplicable = not_applicable(metrics, components)
    if len(inapplicable) == len(findings.TITLES):  # nothing to compute
        present = set()
    chosen = [m for m in VERDICT_METRICS if m in present]
    absent = [display_name(m) for m in VERDICT_METRICS if m not in present]

    def run(frame: pd.DataFrame, metric: str) -> list[findings.Finding]:
        return findings.compute_findings(frame, languages, components, metric=metric,
                                         n_permutations=n_permutations)

    cells: dict[int, list[dict]] = {i: [] for i in findings.TITLES}
    missing: dict[int, list[str]] = {i: [] for i in findings.TITLES}
    if absent:
        for i in findings.TITLES:
            missing[i].append(f"not in this run: {', '.join(absent)}")
    unmatched, unresidualised, unvoiced = [], [], []
    raw_by_metric: dict[str, list[findings.Finding]] = {}
    for metric in chosen:
        rows = findings.metric_rows(metrics, metric)
        raw = raw_by_metric[metric] = run(rows, metric)
        residual, matched = residualised_rows(rows), length_matched_rows(rows, variants)
        by_control = {RAW: raw, RESIDUALISED: run(residual, metric) if not residual.empty else None,
                      LENGTH_MATCHED: run(matched, metric) if not matched.empty else None}
        if by_control[RESIDUALISED] is None:
            unresidualised.append(display_name(metric))
        if by_control[LENGTH_MATCHED] is None:
            unmatched.append(display_name(metric))
        for control, found in by_control.items():
            if found is None:
                continue
            for finding in found:
                reason = "" if finding.effect is not None else _first_line(finding.summary)
                cells[finding.id].append(_cell(metric, control, finding.effect, reason))
        voice = raw[2].voice_effect
        if voice is not None:
            cells[3].append(_cell(metric, VOICE, voice))
        else:
            unvoiced.append(display_name(metric))
    for i in findings.TITLES:
        if unresidualised:
            missing[i].append(f"{RESIDUALISED}: no residualised values for "
                              f"{', '.join(unresidualised)}")
        if unmatched:
            missing[i].append(f"{LENGTH_MATCHED}: no length-matched rows for {', '.join(unmatched)}")
        if i != 3:
            missing[i].append(f"{VOICE}: defined for finding 3 only")
        elif unvoiced:
            missing[i].append(f"{VOICE}: no speech in a second voice for {', '.join(unvoiced)}")
    if detail_metric in raw_by_metric:  # already computed as the table's raw cells
        detail_findings = raw_by_metric[detail_metric]
    elif detail_metric in present:
        detail_findings = run(findings.metric_rows(metrics, detail_metric), detail_metric)
    else:
        detail_findings = []
    details = {f.id: f for f in detail_findings}
    out = []
    for i, title in findings.TITLES.items():
        table = pd.DataFrame(cells[i], columns=TABLE_COLUMNS)
        if i in inapplicable:
            out.append(FindingVerdict(i, title, NOT_APPLICABLE, inapplicable[i],
                                      table.iloc[0:0], [], details.get(i), detail_metric))
            continue
        verdict, why = headline(table)
        out.append(FindingVerdict(i, title, verdict, why, table, missing[i], details.get(i),
                                  detail_metric))
    return out


def format_verdicts(verdicts: list[FindingVerdict]) -> str:
    """Plain text: per finding the headline and why, the metric x control table, what is missing,
    and the detail metric's summary."""
    blocks = []
    for found in verdicts:
        lines = [f"{found.id}. {found.title}: {found.headline.upper()}", f"   {found.reason}"]
        if not found.cells.empty:
            table = found.cells.rename(columns={"ci_low": "95% low", "ci_high": "95% high"})
            text = table.drop(columns="note").to_string(
                index=False, float_format=lambda v: f"{v:+.3f}")
            lines += ["   " + line for line in text.splitlines()]
            lines.append(f"   ({INTERVAL_SCOPE}; no claim about other corpora.)")
        lines += [f"   Not evaluated: {item}." for item in found.missing]
        if found.headline == NOT_APPLICABLE:
            pass
        elif found.detail is not None:
            lines.append(f"   {display_name(found.detail_metric)}, raw: {found.detail.summary}")
        else:
            lines.append(f"   ({found.detail_metric!r} has no rows in this run: no single-metric "
                         "summary.)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
