"""Stage 2 of a build: a run's metrics, metric variants and maps, each group and each map a part.

Read from the run's stage-1 parts (``inputs_from_parts``), measured by ``precompute.measure``, one
part per metric group (pairing, components, side a's layer; only those layers are read back) and
per UMAP map, each skipped when already there, so a rerun resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from core.store.tables import params_as_json
from precompute import measure
from precompute.measure_inputs import MeasureInputs, inputs_from_parts
from precompute.pairs import projection_groups
from precompute.processes import in_processes
from precompute.staging import Workspace

METRIC_PART_COLUMNS = {
    "pairing": object, "component_a": object, "component_b": object, "layer_a": "int64",
    "layer_b": "int64", "depth": "float64", "lang_a": object, "lang_b": object,
    "modality_a": object, "modality_b": object, "shared_space": bool, "metric": object,
    "params": object, "n_samples": "int64", "value": "float64", "baseline_mean": "float64",
    "baseline_std": "float64", "ci_low": "float64", "ci_high": "float64",
    "length_baseline": "float64", "value_residualised": "float64", "pooling": object,
    "ci_method": object, "resamples": object}


VARIANT_PART_COLUMNS = {
    "variant": object, "pairing": object, "component_a": object, "component_b": object,
    "layer_a": "int64", "layer_b": "int64", "depth": "float64", "lang_a": object, "lang_b": object,
    "metric": object, "params": object, "n_samples": "int64", "value": "float64",
    "baseline_mean": "float64", "baseline_std": "float64"}


PROJECTION_PART_COLUMNS = {
    "component": object, "layer": "int64", "lang": object, "modality": object,
    "sentence_id": "int64", "method": object, "x": "float64", "y": "float64", "params": object}


def measure_into_parts(out: Path, workspace: Workspace, plan: dict[str, Any], *,
                       workers: int = 1) -> None:
    """The metric, variant and map parts of a run whose stage-1 parts are all there.

    ``workers`` > 1 computes the metric groups in that many processes (``precompute.processes``);
    the parts are the same whoever computes them.
    """
    run_id = plan["run_id"]
    inputs = inputs_from_parts(workspace, plan)
    todo = [gid for gid in range(len(inputs.groups))
            if not (workspace.has(run_id, "metrics", f"{gid:06d}")
                    and workspace.has(run_id, "variants", f"{gid:06d}"))]
    if workers > 1 and len(todo) > 1:
        in_processes(metric_group_parts, [(str(out), run_id, gid) for gid in todo],
                     workers, desc=f"metrics {run_id} ({workers} workers)")
    else:
        for gid in tqdm(todo, desc=f"metrics {run_id}", unit="group"):
            group_parts(workspace, run_id, inputs, gid)
    if inputs.config.umap:
        maps = projection_groups(inputs.components, inputs.modality_pairs)
        todo_maps = [(gid, g) for gid, g in enumerate(maps)
                     if not workspace.has(run_id, "projections", f"{gid:06d}")]
        for gid, group in tqdm(todo_maps, desc=f"umap {run_id}", unit="map"):
            frame = measure.compute_projections(inputs, [group], progress=False)
            if not frame.empty:
                params_as_json(frame)
            workspace.write_part(with_columns(frame, PROJECTION_PART_COLUMNS), run_id,
                                 "projections", f"{gid:06d}")


def group_parts(workspace: Workspace, run_id: str, inputs: MeasureInputs, gid: int) -> None:
    """One metric group's metrics part and variants part (each skipped when present)."""
    name, group = f"{gid:06d}", inputs.groups[gid]
    if not workspace.has(run_id, "metrics", name):
        frame = measure.compute_metrics(inputs, group, progress=False)
        workspace.write_part(with_columns(frame, METRIC_PART_COLUMNS), run_id, "metrics", name)
    if not workspace.has(run_id, "variants", name):
        frame = measure.compute_metric_variants(inputs, group)
        workspace.write_part(with_columns(frame, VARIANT_PART_COLUMNS), run_id, "variants", name)


def metric_group_parts(out: str, run_id: str, gid: int) -> None:
    """A worker process's share of ``measure_into_parts``: group ``gid`` of a run, from its parts."""
    workspace = Workspace(Path(out))
    group_parts(workspace, run_id, inputs_from_parts(workspace, workspace.read_job(run_id)), gid)


def with_columns(frame: pd.DataFrame, columns: dict[str, Any]) -> pd.DataFrame:
    """``frame`` with exactly ``columns`` (an empty frame gets them typed, for its Parquet part)."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})
    return frame[list(columns)]
