"""The "Your recording" page's chart builders on hand-made frames: what each trace holds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboard import recording_charts as rc

LANGUAGES = pd.DataFrame({"lang": ["eng_Latn", "deu_Latn"], "name": ["English", "German"],
                          "resource_level": ["high", "high"], "whisper_hours": [1.0, 0.5]})


def _points(layers=(0, 1), n=6) -> pd.DataFrame:
    """``n`` stored items per layer on a line: item i at (i, layer)."""
    rows = []
    for layer in layers:
        for i in range(n):
            rows.append({"component": "speech_encoder", "layer": layer, "item_id": 100 + i,
                         "method": "umap", "x": float(i), "y": float(layer),
                         "lang": "eng_Latn" if i % 2 == 0 else "deu_Latn", "modality": "speech",
                         "text": f"sentence <{i}>", "params": "{}"})
    return pd.DataFrame(rows)


def _placements(layers=(0, 1)) -> pd.DataFrame:
    return pd.DataFrame([{"component": "speech_encoder", "layer": layer, "layer_name": f"L{layer}",
                          "method": "umap", "params": "{}", "query": "recording",
                          "x": 1.5, "y": float(layer), "neighbour_ids": (101, 102)}
                         for layer in layers])


def test_map_figure_has_one_panel_per_layer_with_the_clip_and_its_neighbours():
    fig = rc.map_figure(_points(), _placements(), LANGUAGES, component="speech_encoder",
                        layer_names={0: "L0", 1: "L1"})
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["L0", "L1"]
    stored = [t for t in fig.data if t.type == "scattergl" and t.showlegend is False]
    assert len(stored) == 2 and all(len(t.x) == 6 for t in stored)
    assert all(t.hoverinfo == "skip" for t in stored)  # background points: no labels
    stars = [t for t in fig.data if t.name == "your recording"]
    assert len(stars) == 2 and list(stars[0].x) == [1.5] and stars[0].marker.symbol == "star"
    assert [t.showlegend for t in stars] == [True, False]  # one legend entry
    rings = [t for t in fig.data if t.marker is not None and t.marker.symbol == "circle-open"]
    assert len(rings) == 2
    np.testing.assert_array_equal(rings[0].x, [1.0, 2.0])  # items 101 and 102
    # neighbours are named on hover, escaped, in rank order
    assert rings[0].hovertext[0].startswith("neighbour 1 of your recording: German · speech")
    assert "sentence &lt;1&gt;" in rings[0].hovertext[0]
    lines = [t for t in fig.data if t.mode == "lines"]
    assert list(lines[0].x) == [1.5, 1.0, None, 1.5, 2.0, None]
    json.loads(fig.to_json())  # serialisable as the page sends it


def test_map_figure_draws_a_joint_maps_members_in_its_panel():
    """A joint map (text and speech in one space) draws every member point in the panel."""
    points = pd.concat([_points(layers=(0,)),
                        _points(layers=(0,)).assign(component="text_path", item_id=lambda f:
                                                    f["item_id"] + 50, modality="text")])
    params = json.dumps({"joint": ["speech_encoder:0", "text_path:0"]})
    fig = rc.map_figure(points, _placements(layers=(0,)).assign(params=params), LANGUAGES,
                        component="speech_encoder")
    stored = [t for t in fig.data if t.type == "scattergl" and t.showlegend is False]
    assert len(stored) == 1 and len(stored[0].x) == 12


def test_ring_labels_keep_the_neighbours_rank_when_one_is_not_on_the_map():
    placed = _placements(layers=(0,)).assign(neighbour_ids=[(999, 102)])  # 999 has no position
    fig = rc.map_figure(_points(layers=(0,)), placed, LANGUAGES, component="speech_encoder")
    (rings,) = [t for t in fig.data if t.marker is not None and t.marker.symbol == "circle-open"]
    assert len(rings.x) == 1 and rings.hovertext[0].startswith("neighbour 2 of your recording")


@pytest.mark.parametrize("frame", ["points", "placements"])
def test_map_figure_without_maps_says_so(frame):
    points, placed = _points(), _placements()
    empty = {"points": (points.iloc[:0], placed), "placements": (points, placed.iloc[:0])}[frame]
    fig = rc.map_figure(*empty, LANGUAGES, component="speech_encoder")
    assert "no 2-D maps" in fig.layout.annotations[0].text


def test_envelope_keeps_extremes_and_bounds_columns():
    wave = np.zeros(10_000, dtype=np.float32)
    wave[1234], wave[7777] = 0.9, -0.8
    times, low, high = rc.envelope(wave, 16_000, max_points=100)
    assert len(times) == 100 and high.max() == pytest.approx(0.9) and low.min() == \
        pytest.approx(-0.8)
    assert times[1] == pytest.approx(100 / 16_000)
    assert [len(a) for a in rc.envelope(np.zeros(0), 16_000)] == [0, 0, 0]


def test_a_stored_map_serves_many_clips_and_is_never_edited():
    """The page builds the stored part once per run and component and copies it per clip: each
    clip's figure equals the one-call figure, and the stored figure keeps only stored traces."""
    stored = rc.stored_map(_points(), _placements(), LANGUAGES, component="speech_encoder",
                           layer_names={0: "L0", 1: "L1"})
    before = json.loads(stored.figure.to_json())
    other = _placements().assign(x=4.5, neighbour_ids=[(104, 105)] * 2)
    for placed in (_placements(), other):
        fig = rc.clip_map_figure(stored, placed, component="speech_encoder")
        whole = rc.map_figure(_points(), placed, LANGUAGES, component="speech_encoder",
                              layer_names={0: "L0", 1: "L1"})
        assert json.loads(fig.to_json()) == json.loads(whole.to_json())
    assert json.loads(stored.figure.to_json()) == before
    assert not [t for t in stored.figure.data if t.name == "your recording"]
    panels, names = rc.map_panels(_placements(), "speech_encoder")
    assert panels == ((0, "{}"), (1, "{}")) and names == ((0, "L0"), (1, "L1"))
    hash((panels, names))  # a cache key


def test_clips_copied_from_one_stored_map_in_many_threads_keep_every_trace_type():
    """Sessions run in threads and share one StoredMap: copies made at once all keep the stored
    points as scattergl and the stored figure stays as built (plotly's copy edits the source
    traces for a moment, so copies are made one at a time)."""
    import threading

    rng = np.random.default_rng(0)
    n = 20_000
    points = pd.DataFrame({"component": "speech_encoder", "layer": np.repeat([0, 1], n),
                           "item_id": np.tile(np.arange(n), 2), "method": "umap",
                           "x": rng.random(2 * n), "y": rng.random(2 * n),
                           "lang": np.where(np.tile(np.arange(n), 2) % 2, "deu_Latn", "eng_Latn"),
                           "modality": "speech", "text": "s", "params": "{}"})
    stored = rc.stored_map(points, _placements(), LANGUAGES, component="speech_encoder")
    types = [t.type for t in stored.figure.data]
    wrong, errors = [], []

    def draw() -> None:
        try:
            for _ in range(10):
                fig = rc.clip_map_figure(stored, _placements(), component="speech_encoder")
                wrong.extend(t.type for t in fig.data[:len(types)] if t.type != "scattergl")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and not wrong
    assert [t.type for t in stored.figure.data] == types == ["scattergl"] * len(types)
