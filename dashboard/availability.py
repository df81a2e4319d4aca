"""What a run can show for a pairing and metric, and why not when it cannot (pure, no streamlit).

Pages ask here before drawing, so a chart that would be empty is replaced by an explanation:

- a run whose model reads only one modality (a text-only encoder such as multilingual E5) has no
  speech-speech or text-speech values at all;
- coordinate-wise metrics (``core.metrics.similarity.NEEDS_SHARED_SPACE``: paired cosine, retrieval)
  compare dimension i of one vector with dimension i of the other. They are defined only between
  points of one representation space, so the store holds none between, say, Whisper's encoder and
  decoder; SVCCA, CKA and mutual kNN do not depend on the basis and are stored for every pair.

Inputs are the store's frames (``components``: component, modality, space; ``layers``: component,
layer, space) and the component pairs that have rows, so everything here is unit-testable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from core.metrics.similarity import METRIC_NAMES, NEEDS_SHARED_SPACE

#: reasons an ``Availability`` can give
TEXT_ONLY, SPEECH_ONLY, CROSS_SPACE, NOT_COMPUTED, NOT_STORED = (
    "text_only", "speech_only", "cross_space", "not_computed", "not_stored")

PAIRING_MEANING = {
    "text-text": "the same sentences as text in two languages",
    "speech-speech": "the same sentences as speech in two languages",
    "text-speech": "the text and the speech of the same sentences",
}

Pair = tuple[str, str]


@dataclass(frozen=True)
class Availability:
    """Whether a pairing/metric can be drawn for a run, and what to tell the user.

    ``drawable`` False: show ``message`` instead of the chart. ``drawable`` True with a message:
    draw, and say which component pairs (``blocked``) were left out and why.
    """

    drawable: bool
    reason: str | None = None
    message: str = ""
    blocked: tuple[Pair, ...] = ()


def modalities(components: pd.DataFrame) -> list[str]:
    """The input modalities a run's components read, text first."""
    present = set(components["modality"]) if "modality" in components else set()
    return [m for m in ("text", "speech") if m in present]


def only_modality(components: pd.DataFrame) -> str | None:
    """"text" (or "speech") when the run reads only that modality, else None."""
    present = modalities(components)
    return present[0] if len(present) == 1 else None


def reads_only_message(components: pd.DataFrame, model: str) -> str:
    """"<model> reads only text ..." for a one-modality run ('' otherwise)."""
    only = only_modality(components)
    if only is None:
        return ""
    other = "speech" if only == "text" else "text"
    names = ", ".join(f"`{c}`" for c in components["component"])
    return (f"**This model reads only {only}.** `{model}` has no {other} component (its "
            f"components: {names}), so it has no {other} representations to compare.")


def space_of(components: pd.DataFrame, layers: pd.DataFrame | None, component: str,
             layer: int | None = None) -> list[str]:
    """The representation space(s) of a component's points (one layer's, or all, in order)."""
    if layers is not None and not layers.empty and {"component", "space"} <= set(layers.columns):
        rows = layers[layers["component"] == component]
        if layer is not None:
            rows = rows[rows["layer"] == layer]
        spaces = [str(s) for s in rows["space"].dropna()]
        if spaces:
            return list(dict.fromkeys(spaces))
    if "space" in components:
        row = components[components["component"] == component]
        if not row.empty and pd.notna(row.iloc[0]["space"]):
            return [str(row.iloc[0]["space"])]
    return []


def shares_a_space(components: pd.DataFrame, layers: pd.DataFrame | None, pair: Pair) -> bool:
    """Whether any point of one component lives in a space of the other (unknown spaces: yes)."""
    a, b = (space_of(components, layers, c) for c in pair)
    return not a or not b or bool(set(a) & set(b))


def candidate_pairs(pairing: str, components: pd.DataFrame,
                    modality_pairs: Iterable[Sequence[str]] | None = None) -> list[Pair]:
    """The component pairs a run compares for a pairing (as precompute.pairs does): same-modality
    pairings within each component; text-speech the adapter's ``modality_pairs`` (run config) or
    every (text, speech) combination."""
    side_a, side_b = pairing.split("-")
    by_modality = {m: [str(c) for c in components.loc[components["modality"] == m, "component"]]
                   for m in ("text", "speech")} if "modality" in components else {}
    if side_a == side_b:
        return [(c, c) for c in by_modality.get(side_a, [])]
    if modality_pairs:
        return [(str(p[0]), str(p[1])) for p in modality_pairs]
    return [(t, s) for t in by_modality.get("text", []) for s in by_modality.get("speech", [])]


def alternative_metrics(metric_names: Iterable[str]) -> list[str]:
    """Basis-invariant metrics to suggest instead of a coordinate-wise one: the run's, else all."""
    names = [m for m in metric_names if m not in NEEDS_SHARED_SPACE]
    return names or [m for m in METRIC_NAMES if m not in NEEDS_SHARED_SPACE]


def cross_space_message(metric: str, pairs: Sequence[Pair], components: pd.DataFrame,
                        layers: pd.DataFrame | None, metric_names: Iterable[str]) -> str:
    """Why ``metric`` has no values between the components of ``pairs`` (different spaces)."""
    def side(component: str) -> str:
        spaces = space_of(components, layers, component)
        return f"`{component}` (space {', '.join(f'`{s}`' for s in spaces) or 'unknown'})"

    listed = "\n".join(f"- {side(a)} vs {side(b)}" for a, b in pairs)
    alternatives = ", ".join(f"**{m}**" for m in alternative_metrics(metric_names))
    return (f"**{metric} is undefined between these components: they live in different "
            f"representation spaces.**\n\n{listed}\n\n"
            f"{metric} compares coordinates: dimension *i* of one vector with dimension *i* of the "
            "other. Across two spaces those dimensions have nothing to do with each other, so the "
            f"value would be meaningless; precompute did not compute it. Use {alternatives} "
            "instead: they compare the geometry of the two sets of sentences and do not depend on "
            "the basis, so they are stored for every pair.")


def pairing_availability(pairing: str, metric: str, components: pd.DataFrame,
                         layers: pd.DataFrame | None = None, *,
                         stored_pairs: Iterable[Pair] = (),
                         metric_names: Iterable[str] = (), model: str = "",
                         modality_pairs: Iterable[Sequence[str]] | None = None) -> Availability:
    """Can ``metric`` be drawn for ``pairing`` in this run, and if not, why?

    ``stored_pairs``: the (component_a, component_b) that have rows for this metric and pairing.
    """
    metric_names = list(metric_names)
    stored = {(str(a), str(b)) for a, b in stored_pairs}
    needed = pairing.split("-")
    present = modalities(components)
    missing = [m for m in dict.fromkeys(needed) if m not in present]
    if missing:
        only = only_modality(components)
        reason = TEXT_ONLY if only == "text" else SPEECH_ONLY if only == "speech" else NOT_STORED
        message = reads_only_message(components, model) if only else (
            f"`{model}` has no {' or '.join(missing)} component.")
        meaning = PAIRING_MEANING.get(pairing, pairing)
        return Availability(False, reason, f"{message} There is nothing to compare for "
                                           f"**{pairing}** ({meaning}).")
    if metric_names and metric not in metric_names:
        return Availability(False, NOT_COMPUTED,
                            f"This run has no **{metric}** values (its metrics: "
                            f"{', '.join(metric_names)}).")
    candidates = candidate_pairs(pairing, components, modality_pairs) or sorted(stored)
    blocked: tuple[Pair, ...] = ()
    if metric in NEEDS_SHARED_SPACE:
        blocked = tuple(p for p in candidates if p not in stored
                        and not shares_a_space(components, layers, p))
    if blocked:
        message = cross_space_message(metric, blocked, components, layers, metric_names)
        if stored:
            return Availability(True, CROSS_SPACE, "Left out of this view: " + message, blocked)
        return Availability(False, CROSS_SPACE, message, blocked)
    if not stored:
        return Availability(False, NOT_STORED,
                            f"No **{metric}** values are stored for **{pairing}** in this run.")
    return Availability(True)


def projection_note(components: pd.DataFrame, model: str, *, joint_maps: bool = True) -> str:
    """What a run's maps show when that is not text and speech together: a one-modality run's
    maps hold that modality only; a run whose text and speech components live in different spaces
    (``joint_maps`` False) maps each component on its own."""
    only = only_modality(components)
    if only is not None:
        return reads_only_message(components, model) + f" Its maps hold {only} items only."
    if joint_maps:
        return ""
    spaces = ", ".join(f"`{r.component}` in `{r.space}`" for r in components.itertuples()
                       if "space" in components)
    return ("Text and speech are mapped separately: this model's components live in different "
            f"representation spaces ({spaces}), and a joint map would place points by coordinates "
            "that mean different things on the two sides.")


def cer_unavailable_reason(components: pd.DataFrame, config: dict, model: str) -> str | None:
    """Why a run has no character error rates, or None when it should have them."""
    if "speech" not in modalities(components):
        return (f"{model} reads only text: it hears no speech, so it cannot transcribe and this "
                "run has no CER.")
    if config.get("transcribed") is False:
        if config.get("transcribe") is False:
            return f"The build ran with --no-transcribe: no transcripts or CER for {model}."
        return f"{model} cannot transcribe speech, so this run has no transcripts or CER."
    return None


def quantisation_note(config: dict, model: str) -> str | None:
    """A note for runs whose model ran with quantised weights (``model_info.quantisation``)."""
    info = config.get("model_info") or {}
    quantisation = info.get("quantisation") if isinstance(info, dict) else None
    if not quantisation:
        return None
    four_bit = "4-bit" in str(quantisation) or "Q4" in str(quantisation).upper()
    weights = "4-bit weights (dequantised)" if four_bit else "quantised weights (dequantised)"
    return (f"**{model} ran with {weights}:** {quantisation}. The weights were dequantised to "
            "float for the forward pass, so every state and metric here is the quantised model's, "
            "not the original float model's.")


def recording_unavailable(components: pd.DataFrame, model: str,
                          speech_runs: Sequence[str] = ()) -> str | None:
    """Why a run cannot analyse a recording (it has no speech component) and what to pick
    instead (``speech_runs``: this store's runs that read speech); None when it can."""
    if "speech" in modalities(components):
        return None
    message = (reads_only_message(components, model) or f"`{model}` reads no speech.") + (
        " It cannot take a recording: analysing your clip needs a model that hears speech.")
    if speech_runs:
        return message + " Switch to a run that hears speech (e.g. Whisper):"
    return message + (" This store has no run that hears speech; build one with "
                      "`python -m precompute build --model whisper-base`.")
