"""Stages along a component's path, from the store's layers table (pure).

Each layer point has a stage label (frontend, encoder, length_adaptor, projector, decoder, llm,
pooler) and a relative depth along the model's whole path; charts mark where stages begin and end.
"""

from __future__ import annotations

import pandas as pd

SPAN_COLUMNS = ["stage", "start", "end", "first_layer", "last_layer"]


def stage_spans(layers: pd.DataFrame, component: str) -> pd.DataFrame:
    """Contiguous runs of one stage along a component's path: stage, start/end depth, layers."""
    if layers is None or layers.empty:
        return pd.DataFrame(columns=SPAN_COLUMNS)
    points = layers[layers["component"] == component].sort_values("layer")
    spans: list[dict] = []
    for point in points.itertuples():
        depth = float(point.depth)
        if spans and spans[-1]["stage"] == point.stage:
            spans[-1].update(end=depth, last_layer=int(point.layer))
        else:
            spans.append({"stage": str(point.stage), "start": depth, "end": depth,
                          "first_layer": int(point.layer), "last_layer": int(point.layer)})
    return pd.DataFrame(spans, columns=SPAN_COLUMNS)


def stage_summary(layers: pd.DataFrame, component: str) -> str:
    """"frontend 1 · encoder 6": each stage run with its number of points."""
    spans = stage_spans(layers, component)
    return " · ".join(f"{s.stage} {s.last_layer - s.first_layer + 1}" for s in spans.itertuples())


def boundaries(spans: pd.DataFrame) -> list[float]:
    """Depths between consecutive stages (midway between the last point of one and the first of
    the next)."""
    if len(spans) < 2:
        return []
    ends, starts = spans["end"].to_numpy(float)[:-1], spans["start"].to_numpy(float)[1:]
    return [float(v) for v in (ends + starts) / 2]
