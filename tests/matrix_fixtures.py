"""Layer x layer matrices for the synthetic store: simulated layer stacks (nothing real), measured
with the real core functions and written through the store's API, so the Layer x layer page has
matrices of a run with itself and between two runs to draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.metrics.grid import MetricSpec
from core.metrics.layer_matrix import matrix_cells
from core.store import Store
from precompute.matrices import MatrixJob, MatrixOptions, job_rows
from synthetic_store import RUN_ID, TEXT_RUN_ID, write_synthetic_store

N_SENTENCES, DIM = 40, 6
MATRIX_LANGS = ("eng_Latn", "deu_Latn", "spa_Latn")
METRICS = [MetricSpec("svcca", {"k": 3}), MetricSpec("linear_cka")]
OPTIONS = MatrixOptions(n_permutations=19)
SETTINGS = {"seed": 0, "n_bootstrap": 20}


def _stack(base: np.ndarray, rng: np.random.Generator, n_layers: int, noise: float) -> list:
    """Layers drifting away from a shared sentence signal as depth grows."""
    mixing = rng.standard_normal((base.shape[1], DIM))
    return [base @ mixing * (1 - i / n_layers) + noise * (1 + i) * rng.standard_normal(
        (N_SENTENCES, DIM)) for i in range(n_layers)]


def _cells(stack_a: list, stack_b: list) -> pd.DataFrame:
    return matrix_cells(stack_a, stack_b, METRICS, n_permutations=OPTIONS.n_permutations,
                        device="cpu", **SETTINGS)


def matrix_tables(seed: int = 0) -> dict[tuple[str, str], pd.DataFrame]:
    """(run_a, run_b) -> layer_matrices rows: the Whisper-like run's own (text-speech per language
    and mean, text-text English with each other language and mean) and its matrices against the e5-like run."""
    rng = np.random.default_rng(seed)
    stacks = {}
    for lang in MATRIX_LANGS:
        base = rng.standard_normal((N_SENTENCES, 3))
        stacks[("text_decoder", lang)] = _stack(base, rng, 5, 0.3)
        stacks[("speech_encoder", lang)] = _stack(base, rng, 5, 0.5)
        stacks[("text_encoder", lang)] = _stack(base, rng, 7, 0.4)

    def job(component_a: str, component_b: str, pairing: str, pairs) -> pd.DataFrame:
        per_lang = [_cells(stacks[(component_a, lang_a)], stacks[(component_b, lang_b)])
                    .assign(lang_a=lang_a, lang_b=lang_b) for lang_a, lang_b in pairs]
        return job_rows(MatrixJob(component_a, component_b, pairing, tuple(pairs)), per_lang,
                        SETTINGS, OPTIONS)

    same = [(lang, lang) for lang in MATRIX_LANGS]
    own = pd.concat([job("text_decoder", "speech_encoder", "text-speech", same),
                     job("text_decoder", "text_decoder", "text-text",
                         [(MATRIX_LANGS[0], lang) for lang in MATRIX_LANGS[1:]])],
                    ignore_index=True)
    between = pd.concat([job("text_decoder", "text_encoder", "text-text", same),
                         job("speech_encoder", "text_encoder", "speech-text", same)],
                        ignore_index=True)
    return {(RUN_ID, RUN_ID): own, (RUN_ID, TEXT_RUN_ID): between}


def write_matrix_store(path: str | Path) -> Path:
    """The synthetic store with ``matrix_tables`` added."""
    path = write_synthetic_store(path)
    with Store.open(path, read_only=False) as store:
        for (run_a, run_b), rows in matrix_tables().items():
            store.replace_layer_matrices(run_a, run_b, rows)
    return Path(path)
