"""Stage 2 of a build: a run's metrics, metric variants and maps, each group and each map a part.

Read from the run's stage-1 parts (``inputs_from_parts``), measured by ``precompute.measure``, one
part per metric group (pairing, components, side a's layer; only those layers are read back) and
per UMAP map, each skipped when already there, so a rerun resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from core.store.tables import params_as_json
from precompute import measure
from precompute.measure_inputs import MeasureInputs, inputs_from_parts
from precompute.pairs import projection_groups
from precompute.processes import in_processes
from precompute.stagelog import counted
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


@dataclass
class Measured:
    """What stage 2 did for a run: the groups and maps it computed now, those found done (a resumed
    build), and the rows it wrote (for the stage's log line)."""

    groups_done: int = 0
    groups_found: int = 0
    metric_rows: int = 0
    variant_rows: int = 0
    maps_done: int = 0
    maps_found: int = 0
    umap: bool = True

    def summary(self) -> str:
        """``3 metric groups (1,234 metric rows, 120 variant rows), 6 UMAP maps``, with what was
        already done."""
        text = (f"{counted(self.groups_done, 'metric group')} "
                f"({counted(self.metric_rows, 'metric row')}, "
                f"{counted(self.variant_rows, 'variant row')})")
        if self.groups_found:
            text += f", {self.groups_found} already done"
        if not self.umap:
            return text + ", no UMAP maps (--no-umap)"
        text += f"; {counted(self.maps_done, 'UMAP map')}"
        return text + (f", {self.maps_found} already done" if self.maps_found else "")


def measure_into_parts(out: Path, workspace: Workspace, plan: dict[str, Any], *,
                       workers: int = 1) -> Measured:
    """The metric, variant and map parts of a run whose stage-1 parts are all there.

    ``workers`` > 1 computes the metric groups in that many processes (``precompute.processes``);
    the parts are the same whoever computes them. Bars only for work left to do.
    """
    run_id = plan["run_id"]
    inputs = inputs_from_parts(workspace, plan)
    todo = [gid for gid in range(len(inputs.groups))
            if not (workspace.has(run_id, "metrics", f"{gid:06d}")
                    and workspace.has(run_id, "variants", f"{gid:06d}"))]
    measured = Measured(groups_done=len(todo), groups_found=len(inputs.groups) - len(todo),
                        umap=bool(inputs.config.umap))
    if todo:
        measure.log_variant_notes(inputs, run_id)
    if workers > 1 and len(todo) > 1:
        counts = in_processes(metric_group_parts, [(str(out), run_id, gid) for gid in todo],
                              workers, desc=f"metrics {run_id} ({workers} workers)")
    else:
        counts = [group_parts(workspace, run_id, inputs, gid)
                  for gid in tqdm(todo, desc=f"metrics {run_id}", unit="group", disable=not todo)]
    measured.metric_rows = sum(m for m, _ in counts)
    measured.variant_rows = sum(v for _, v in counts)
    if inputs.config.umap:
        maps = projection_groups(inputs.components, inputs.modality_pairs)
        todo_maps = [(gid, g) for gid, g in enumerate(maps)
                     if not workspace.has(run_id, "projections", f"{gid:06d}")]
        measured.maps_found = len(maps) - len(todo_maps)
        for gid, group in tqdm(todo_maps, desc=f"umap {run_id}", unit="map",
                               disable=not todo_maps):
            frame = measure.compute_projections(inputs, [group], progress=False)
            if not frame.empty:
                params_as_json(frame)
                measured.maps_done += 1
            workspace.write_part(with_columns(frame, PROJECTION_PART_COLUMNS), run_id,
                                 "projections", f"{gid:06d}")
    return measured


def group_parts(workspace: Workspace, run_id: str, inputs: MeasureInputs,
                gid: int) -> tuple[int, int]:
    """One metric group's metrics part and variants part (each skipped when present); returns the
    rows written now (metrics, variants)."""
    name, group = f"{gid:06d}", inputs.groups[gid]
    metric_rows = variant_rows = 0
    if not workspace.has(run_id, "metrics", name):
        frame = measure.compute_metrics(inputs, group, progress=False)
        workspace.write_part(with_columns(frame, METRIC_PART_COLUMNS), run_id, "metrics", name)
        metric_rows = len(frame)
    if not workspace.has(run_id, "variants", name):
        frame = measure.compute_metric_variants(inputs, group)
        workspace.write_part(with_columns(frame, VARIANT_PART_COLUMNS), run_id, "variants", name)
        variant_rows = len(frame)
    return metric_rows, variant_rows


def metric_group_parts(out: str, run_id: str, gid: int) -> tuple[int, int]:
    """A worker process's share of ``measure_into_parts``: group ``gid`` of a run, from its parts
    (the rows it wrote, as ``group_parts``)."""
    workspace = Workspace(Path(out))
    return group_parts(workspace, run_id, inputs_from_parts(workspace, workspace.read_job(run_id)),
                       gid)


def with_columns(frame: pd.DataFrame, columns: dict[str, Any]) -> pd.DataFrame:
    """``frame`` with exactly ``columns`` (an empty frame gets them typed, for its Parquet part)."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})
    return frame[list(columns)]
