"""What each similarity metric's number means, in words: the one table the dashboard's metric
selector, chart hovers and tables read, so a reader never meets a bare metric id.

Each entry says the range, what 1 means, what unrelated sentences score (chance), and the
parameters (SVCCA's k, mutual kNN's k and pool size N, retrieval's P@1 directions). Invariances
and whether a metric needs both sides in one representation space are not restated here: they
are worded from ``similarity.INVARIANCES`` and ``similarity.NEEDS_SHARED_SPACE``, the
declarations tests/test_metrics_properties.py checks on data. No torch: the pages import it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.metrics.similarity import (
    INVARIANCES,
    NEEDS_SHARED_SPACE,
    SVCCA_DEFAULT_MAX_K,
)

#: The words for each invariance named in ``similarity.INVARIANCES``.
INVARIANCE_TEXT: dict[str, str] = {
    "orthogonal_one_side": "a rotation or reflection of one side alone",
    "orthogonal_both_sides": "the same rotation or reflection of both sides",
    "isotropic_scale": "scaling a side by a constant",
    "invertible_linear": "any invertible linear map of a side (when k keeps every direction)",
}
SHARED_SPACE_TEXT = ("Needs both sides in one representation space (it compares coordinates), so "
                     "it is not drawn between different spaces, e.g. Whisper's encoder and decoder.")
ANY_SPACE_TEXT = "Compares two sides in any two spaces (their bases need not match)."
#: retrieval's ``direction`` parameter in words
DIRECTION_TEXT = {"mean": "mean of a→b and b→a", "a_to_b": "a finds b", "b_to_a": "b finds a"}


@dataclass(frozen=True)
class MetricInfo:
    """A metric in words: ``label`` is its display name, the rest one sentence each."""

    label: str
    what: str          # what is computed
    value_range: str   # "0 to 1"
    one_means: str     # what a value of 1 says
    chance: str        # what unrelated sentences score, and where the page shows it
    chance_short: str  # the same in a few words, for hovers
    parameters: str = ""  # k, N, P@1 directions; "" when it has none


METRIC_INFO: dict[str, MetricInfo] = {
    "svcca": MetricInfo(
        label="SVCCA",
        what="Mean canonical correlation between the top k singular directions of each side "
             "(Raghu et al. 2017).",
        value_range="0 to 1",
        one_means="1 means each side's top-k directions are a linear map of the other's.",
        chance="Chance is not 0 and rises with k/n: independent data score about 0.26 at "
               "k = n/10, 0.44 at n/4, 0.65 at n/2 and 1 at k = n - 1. The shuffled baseline "
               "shows it at the row's own k and n.",
        chance_short="chance rises with k/n (see the shuffled baseline)",
        parameters=f"k: directions kept per side. Default k = min({SVCCA_DEFAULT_MAX_K}, n/10, "
                   "dimensions); the SVCCA-at-other-k view varies it. As k nears n the value "
                   "nears 1 for any data, so compare values only at the same k and n."),
    "linear_cka": MetricInfo(
        label="linear CKA",
        what="How alike the two sides' sentence-by-sentence similarity (Gram) matrices are "
             "(Kornblith et al. 2019).",
        value_range="0 to 1",
        one_means="1 means the two sides' geometries are equal up to rotation and scale.",
        chance="Unrelated sentences score above 0, more with few sentences and many "
               "dimensions; the shuffled baseline shows it. Weighted by the largest-variance "
               "directions, so a shared direction such as sentence length can carry it: compare "
               "with the length-only baseline.",
        chance_short="chance above 0 (see the shuffled baseline)"),
    "cka_debiased": MetricInfo(
        label="debiased CKA",
        what="Linear CKA with Song et al.'s unbiased HSIC, which removes CKA's positive bias at "
             "small n.",
        value_range="about -1 to 1 (can be negative)",
        one_means="1 means the two sides' geometries are equal up to rotation and scale.",
        chance="Unrelated sentences score about 0 at any n; the shuffled baseline shows it. "
               "Like linear CKA it is weighted by the largest-variance directions (compare with "
               "the length-only baseline).",
        chance_short="chance ≈ 0"),
    "mutual_knn": MetricInfo(
        label="mutual kNN",
        what="Share of each sentence's k nearest neighbours (cosine, other sentences) that the "
             "two sides have in common, averaged over sentences (Huh et al. 2024).",
        value_range="0 to 1",
        one_means="1 means every sentence has the same k neighbours on both sides.",
        chance="Unrelated sentences score about k/(N - 1), e.g. 0.05 for k = 10 among "
               "N = 200; the shuffled baseline shows it.",
        chance_short="chance ≈ k/(N - 1)",
        parameters="k: neighbours per sentence; N: the pool of sentences they are drawn from "
                   "(the row's n). With k fixed the value falls as N grows (more candidates to "
                   "disagree on), so compare values only at the same k and N."),
    "retrieval": MetricInfo(
        label="retrieval P@1",
        what="Precision at 1 of cosine retrieval: how often a sentence's nearest vector on the "
             "other side is its own counterpart.",
        value_range="0 to 1",
        one_means="1 means every sentence finds its own counterpart first.",
        chance="Unrelated sentences score about 1/N (0.005 among N = 200); the shuffled "
               "baseline shows it.",
        chance_short="chance ≈ 1/N",
        parameters="P@1 has two directions, side a finds side b and side b finds side a; the "
                   "stored value is their mean unless the row's direction says otherwise. N: "
                   "the candidates (the row's n); the value falls as N grows."),
    "paired_cosine": MetricInfo(
        label="paired cosine",
        what="Mean cosine between each sentence's two vectors.",
        value_range="-1 to 1",
        one_means="1 means each sentence's two vectors point the same way.",
        chance="Unrelated sentences often score far above 0 (vectors of one space share a "
               "common direction); the shuffled baseline shows the level to read it against.",
        chance_short="chance: the shuffled baseline (often far above 0)"),
}


def info(metric: str) -> MetricInfo | None:
    """The metric's entry, or None for a name the table does not know."""
    return METRIC_INFO.get(metric)


def display_name(metric: str) -> str:
    """The name a reader sees ("linear CKA"); an unknown id is shown as it is."""
    entry = info(metric)
    return entry.label if entry else metric


def invariance_text(metric: str) -> str:
    """"Unchanged by ...", worded from ``similarity.INVARIANCES``; "" for an unknown metric."""
    declared = INVARIANCES.get(metric)
    if not declared:
        return ""
    order = list(INVARIANCE_TEXT)  # an invariance without words fails here, not silently
    return ("Unchanged by " + "; ".join(INVARIANCE_TEXT[name]
                                        for name in sorted(declared, key=order.index)) + ".")


def space_text(metric: str) -> str:
    """Whether the metric needs one representation space (``similarity.NEEDS_SHARED_SPACE``)."""
    return SHARED_SPACE_TEXT if metric in NEEDS_SHARED_SPACE else ANY_SPACE_TEXT


def parsed_params(params: object) -> dict:
    """A row's ``params`` (JSON text as the store returns it, a dict, or missing) as a dict."""
    if isinstance(params, Mapping):
        return dict(params)
    if isinstance(params, str) and params.strip():
        try:
            value = json.loads(params)
        except json.JSONDecodeError:
            return {}
        return dict(value) if isinstance(value, Mapping) else {}
    return {}


def chance_level(metric: str, params: object, n_samples: object) -> float | None:
    """The expected score of unrelated sentences where it follows from k and N alone (mutual
    kNN: k/(N - 1); retrieval: 1/N); None where only the shuffled baseline can tell."""
    n = _whole(n_samples)
    if n is None or n < 2:
        return None
    if metric == "mutual_knn":
        k = _whole(parsed_params(params).get("k", 10))
        return k / (n - 1) if k else None
    if metric == "retrieval":
        return 1 / n
    return None


def settings_text(metric: str, settings: Iterable[tuple[object, object]]) -> str:
    """The parameters rows were computed with, e.g. "k = 20, n = 200 sentences", from their
    (params, n_samples) pairs; ranges where rows differ ("k = 6-12")."""
    pairs = list(settings)
    ks = sorted({k for params, _ in pairs
                 if (k := _whole(parsed_params(params).get("k"))) is not None})
    ns = sorted({n for _, n_samples in pairs if (n := _whole(n_samples)) is not None})
    directions = sorted({str(d) for params, _ in pairs
                         if (d := parsed_params(params).get("direction")) is not None})
    parts = []
    if ks and metric in ("svcca", "mutual_knn"):
        parts.append(f"k = {_span(ks)}")
    if ns:
        parts.append(f"{'N' if metric in ('mutual_knn', 'retrieval') else 'n'} = {_span(ns)} "
                     "sentences")
    if directions and metric == "retrieval":
        parts.append("direction: " + ", ".join(DIRECTION_TEXT.get(d, d) for d in directions))
    return ", ".join(parts)



def metric_help(metric: str, settings: str = "") -> str:
    """Markdown for the metric selector's help: what it computes, range, 1, chance,
    invariances, representation spaces, parameters, and ``settings`` (this run's k and n)."""
    entry = info(metric)
    if entry is None:
        return f"**{metric}**: no description recorded for this metric."
    lines = [f"**{entry.label}**: {entry.what}",
             f"Range {entry.value_range}. {entry.one_means} {entry.chance}",
             f"{invariance_text(metric)} {space_text(metric)}"]
    if entry.parameters:
        lines.append(entry.parameters)
    if settings:
        lines.append(f"In this run: {settings}.")
    return "\n\n".join(lines)


def metric_line(metric: str, settings: Iterable[tuple[object, object]] = ()) -> str:
    """One plain-text line naming the metric, its parameters, range and chance level, for a chart
    hover or beside the selector; ``settings`` are the rows' (params, n_samples) pairs."""
    entry = info(metric)
    if entry is None:
        return metric
    pairs = list(settings)
    chances = {chance_level(metric, params, n) for params, n in pairs}
    chance = next(iter(chances)) if len(chances) == 1 else None
    chance_words = entry.chance_short + (f" = {chance:.3f}" if chance is not None else "")
    values = settings_text(metric, pairs)
    head = entry.label + (f" ({values})" if values else "")
    return f"{head}: range {entry.value_range}, {chance_words}"


def _whole(value: object) -> int | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else int(number)


def _span(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"
