"""Layer x layer: every layer of one side against every layer of the other, best matches marked
(calibrated against the null of the row maximum), and the difference of two matrices."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from core.metrics import descriptions
from dashboard import downloads, state, url_state
from dashboard.charts.languages import language_names
from dashboard.charts.layer_matrix import (DIFFERENCE_NOTE, best_match_table, difference_figure,
                                           matrix_difference, matrix_figure, resampling_mismatch)

MEAN = "mean"
KEY = ("run_a", "run_b", "component_a", "component_b", "pairing", "lang_a", "lang_b")

st.title("Layer x layer")
st.caption("Every layer of one side against every layer of the other, on the same sentences: "
           "which layer on one side resembles which on the other. Rows are side a's layers "
           "(input at the bottom), columns side b's. A star marks each row's best match that "
           "clears the calibrated threshold (the null of the row's maximum under shared sentence "
           "shuffles, not of one cell); an open circle a best match that does not. "
           "How to read it: docs/layer_matrices.md.")

ref = state.store_ref()
sets = state.layer_matrix_sets(ref)
if sets.empty:
    st.info("This store holds no layer x layer matrices yet. Compute them from the stored "
            f"activations with `python -m precompute matrices --store {ref.path}` (add "
            "`--against RUN_ID` for matrices between two runs on the same sentences).",
            icon=":material/info:")
    st.stop()
models = state.runs(ref).set_index("run_id")["model"].to_dict()
names = language_names(state.languages(ref))


def _choose(container: Any, label: str, options: Sequence, key: str,
            format_func: Callable[[Any], str] = str, default: Any = None) -> Any:
    """A selectbox kept in the URL (``?key=...``); a remembered or linked value that the options
    no longer hold falls back to ``default`` (else the first option)."""
    options = list(options)
    url_state.seed(key, options, default if default in options else options[0])
    return container.selectbox(label, options, key=key, format_func=format_func)


def _run_label(pair: tuple[str, str]) -> str:
    run_a, run_b = pair
    if run_a == run_b:
        return f"{models.get(run_a, run_a)} (within the run)"
    return f"{models.get(run_a, run_a)} × {models.get(run_b, run_b)}"


def _lang_label(langs: tuple[str, str], n_langs: int) -> str:
    lang_a, lang_b = langs
    if lang_a == MEAN:
        return f"mean over {n_langs} {'languages' if len(set(langs)) == 1 else 'language pairs'}"
    if lang_a == lang_b:
        return names.get(lang_a, lang_a)
    return f"{names.get(lang_a, lang_a)} × {names.get(lang_b, lang_b)}"


def pick_matrix(container: Any, prefix: str, defaults: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """Run pair, components and language of one matrix, chosen among the stored ones;
    ``defaults`` (for B: ``b_defaults(A)``) gives the first choice of each."""
    defaults = defaults or {}
    run_pairs = list(dict.fromkeys(zip(sets.run_a, sets.run_b)))
    own = [pair for pair in run_pairs if pair[0] == pair[1]]
    runs = _choose(container, "Runs", run_pairs, f"{prefix}runs", _run_label,
                   default=defaults.get("runs", (own or run_pairs)[0]))
    chosen = sets[(sets.run_a == runs[0]) & (sets.run_b == runs[1])]
    combos = list(dict.fromkeys(zip(chosen.component_a, chosen.component_b, chosen.pairing)))
    cross = [c for c in combos if c[2] in ("text-speech", "speech-text")]
    combo = _choose(container, "Components (a vs b)", combos, f"{prefix}components",
                    lambda c: f"{c[0]} vs {c[1]} · {c[2]}",
                    default=defaults.get("combo", (cross or combos)[0]))
    chosen = chosen[(chosen.component_a == combo[0]) & (chosen.component_b == combo[1])
                    & (chosen.pairing == combo[2])]
    n_langs = int(chosen.n_langs.max())
    lang_pairs = sorted(zip(chosen.lang_a, chosen.lang_b), key=lambda p: (p[0] != MEAN, p))
    langs = _choose(container, "Language", lang_pairs, f"{prefix}langs",
                    lambda p: _lang_label(p, n_langs), default=defaults.get("langs", lang_pairs[0]))
    return dict(zip(KEY, (*runs, *combo[:2], combo[2], *langs)))


def b_defaults(first: dict[str, Any]) -> dict[str, Any]:
    """Matrix B's first choice: A's runs, and another component pair of A's shape in A's language
    (text-speech minus text-text; Whisper's decoder vs e5 minus its encoder vs e5), else A's
    components in another language."""
    runs = (first["run_a"], first["run_b"])
    chosen = sets[(sets.run_a == runs[0]) & (sets.run_b == runs[1])]
    own = chosen[(chosen.component_a == first["component_a"])
                 & (chosen.component_b == first["component_b"])
                 & (chosen.pairing == first["pairing"])].iloc[0]
    same_shape = chosen[(chosen.n_layers_a == own.n_layers_a) & (chosen.n_layers_b == own.n_layers_b)
                        & (chosen.lang_a == first["lang_a"]) & (chosen.lang_b == first["lang_b"])
                        & ((chosen.component_a != first["component_a"])
                           | (chosen.component_b != first["component_b"])
                           | (chosen.pairing != first["pairing"]))]
    if not same_shape.empty:
        other = same_shape.iloc[0]
        return {"runs": runs, "combo": (other.component_a, other.component_b, other.pairing),
                "langs": (first["lang_a"], first["lang_b"])}
    combo = (first["component_a"], first["component_b"], first["pairing"])
    langs = chosen[(chosen.component_a == combo[0]) & (chosen.component_b == combo[1])
                   & (chosen.pairing == combo[2]) & (chosen.lang_a != first["lang_a"])]
    return {"runs": runs, "combo": combo,
            **({"langs": (langs.lang_a.iloc[0], langs.lang_b.iloc[0])} if len(langs) else {})}


def _short(choice: dict[str, Any]) -> str:
    lang = "mean" if choice["lang_a"] == MEAN else _lang_label((choice["lang_a"], choice["lang_b"]), 0)
    return f"{choice['pairing']} {lang}"


def _speech_notice(*choices: dict[str, Any]) -> None:
    """Say when the speech behind the matrices is synthetic (their pairings with speech only)."""
    for choice in choices:
        langs = None if choice["lang_a"] == "mean" else [choice["lang_a"], choice["lang_b"]]
        state.speech_notice(ref, list(dict.fromkeys([choice["run_a"], choice["run_b"]])), langs,
                            pairing=choice["pairing"])


def axis_labels(choice: dict[str, Any]) -> tuple[str, str, list[str], list[str]]:
    """Axis titles and layer names of both sides of a matrix."""
    out = []
    for side in ("a", "b"):
        run, component = choice[f"run_{side}"], choice[f"component_{side}"]
        lang = choice[f"lang_{side}"]
        where = "" if lang == MEAN else f" · {names.get(lang, lang)}"
        out.append((f"{models.get(run, run)} {component}{where}",
                    list(state.component_layer_names(state.components(ref, run), component))))
    (label_a, names_a), (label_b, names_b) = out
    return label_a, label_b, names_a, names_b


sb = st.sidebar
MODES = ["Matrix", "Difference A − B"]
url_state.seed("lm_mode", MODES, MODES[0])
mode = sb.radio("Show", MODES, key="lm_mode",
                help="Difference: one matrix minus another of the same shape, on a diverging "
                     "scale centred at 0.")
sb.markdown("**Matrix A**" if mode != "Matrix" else "**Matrix**")
first = pick_matrix(sb, "lm_a_")
metrics = list(sets[(sets[list(KEY)] == pd.Series(first)).all(axis=1)].metrics.iloc[0])
metric = _choose(sb, "Metric", metrics, "lm_metric", descriptions.display_name,
                 default="svcca")
sb.caption(descriptions.metric_line(metric, ()))
label_a, label_b, names_a, names_b = axis_labels(first)

if mode == "Matrix":
    url_state.seed("lm_along", ["row", "column"], "row")
    along = sb.radio("Best match of each", ["row", "column"], key="lm_along", horizontal=True,
                     help="row: for each layer of side a, the most similar layer of side b; "
                          "column: the other way round.")
    cells = state.layer_matrix(ref, *first.values(), metric)
    title = f"{descriptions.display_name(metric)} · {first['pairing']}"
    downloads.chart(matrix_figure(cells, names_a=names_a, names_b=names_b, title=title,
                                  label_a=label_a, label_b=label_b,
                                  along="row" if along == "row" else "col"),
                    key="layer_matrix", data=cells, width="content")
    _speech_notice(first)
    alpha = float(cells.alpha.iloc[0]) if len(cells) else 0.05
    n_permutations = int(cells.n_permutations.iloc[0]) if len(cells) else 0
    st.subheader("Best match per layer, calibrated", divider="gray")
    st.caption(f"The best layer of a line is the maximum of several noisy cells, so it beats a "
               f"single cell's shuffled baseline even where nothing corresponds. Its p-value here "
               f"comes from the maximum of the line under each of {n_permutations} shared shuffles "
               f"of the sentences (Gröger et al. 2026); 'significant' = p ≤ {alpha:g}. Intervals "
               "and baselines of every cell are in the hover.")
    downloads.table(best_match_table(cells, names_a=names_a, names_b=names_b,
                                     along="row" if along == "row" else "col"),
                    key="layer_matrix_best", name="layer_matrix_best_matches", hide_index=True)
else:
    sb.markdown("**Matrix B**")
    second = pick_matrix(sb, "lm_b_", b_defaults(first))
    cells_a = state.layer_matrix(ref, *first.values(), metric, with_resamples=True)
    cells_b = state.layer_matrix(ref, *second.values(), metric, with_resamples=True)
    shape_a = (cells_a.layer_a.nunique(), cells_a.layer_b.nunique())
    shape_b = (cells_b.layer_a.nunique(), cells_b.layer_b.nunique())
    if cells_b.empty:
        st.info(f"Matrix B has no {descriptions.display_name(metric)} cells: pick another metric "
                "or matrix.", icon=":material/info:")
        st.stop()
    if shape_a != shape_b:
        st.info(f"A is {shape_a[0]} x {shape_a[1]} layers and B is {shape_b[0]} x {shape_b[1]}: "
                "a difference needs matrices of the same shape (cell by cell). Pick a B with the "
                "same components' depths.", icon=":material/info:")
        st.stop()
    difference = matrix_difference(cells_a, cells_b)
    _, label_b2, _, _ = axis_labels(second)
    title = (f"{descriptions.display_name(metric)} · A: {_short(first)} − B: {_short(second)}")
    downloads.chart(difference_figure(difference, names_a=names_a, names_b=names_b, title=title,
                                      label_a=f"rows: A {first['component_a']}, "
                                              f"B {second['component_a']}",
                                      label_b=f"columns: A {label_b}, B {label_b2}"),
                    key="layer_matrix_difference", data=difference, width="content")
    _speech_notice(first, second)
    why = resampling_mismatch(cells_a, cells_b)
    if why is None:
        st.caption("Intervals: the two matrices were computed on the same sentence resamples, so "
                   "each cell's 95% interval comes from the difference inside each resample; a dot "
                   "marks cells whose interval excludes 0. Sentence resampling within this corpus "
                   "only: it says nothing about other corpora or voices.")
    else:
        st.info(DIFFERENCE_NOTE.format(why=why), icon=":material/info:")
