"""The "Your recording" page's chart builders on hand-made frames: what each trace holds."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from dashboard.charts import recording as rc

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
    # the stored points are one image per panel, in that panel's data coordinates (no WebGL)
    assert not [t for t in fig.data if t.type == "scattergl"]
    images = fig.layout.images
    assert [(i.xref, i.yref) for i in images] == [("x", "y"), ("x2", "y2")]
    for image, layer in zip(images, (0, 1), strict=True):
        assert image.source.startswith("data:image/png;base64,") and image.layer == "below"
        assert image.x < 0 and image.x + image.sizex > 5  # items 0..5 on x
        assert image.y > layer > image.y - image.sizey  # top edge above, bottom below
        axis_x = fig.layout["xaxis" if layer == 0 else "xaxis2"]
        axis_y = fig.layout["yaxis" if layer == 0 else "yaxis2"]
        assert tuple(axis_x.range) == (image.x, image.x + image.sizex)
        assert tuple(axis_y.range) == (image.y - image.sizey, image.y)
        assert axis_y.scaleanchor == image.xref  # equal scales: round discs stay round
    legend = [t for t in fig.data if t.showlegend is not False and t.name in ("English", "German")]
    assert [t.name for t in legend] == ["English", "German"] and all(t.x == (None,) for t in legend)
    # the languages have a legend of their own that clicks do not toggle (their points are in
    # the images); the clip's entries stay in the first, clickable legend
    assert {t.legend for t in legend} == {rc.LANGUAGE_LEGEND}
    language_legend = fig.layout[rc.LANGUAGE_LEGEND]
    assert language_legend.itemclick is False and language_legend.itemdoubleclick is False
    assert language_legend.titleclick is False and language_legend.titledoubleclick is False
    assert language_legend.title.side == "top"  # at the side it pushed entries off the figure
    assert {t.legend for t in fig.data if t.name == "your recording"} <= {None, "legend"}
    assert fig.layout.legend.itemclick is not False
    # the clip's legend at the very top, the title on a line below it, both in the top margin
    assert (fig.layout.legend.yref, fig.layout.legend.y, fig.layout.legend.yanchor) == (
        "container", 1, "top")
    title_from_top = (1 - fig.layout.title.y) * fig.layout.height
    assert fig.layout.title.yref == "container"
    assert 25 < title_from_top < fig.layout.margin.t
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
    stored = rc.stored_map(points, _placements(layers=(0,)).assign(params=params), LANGUAGES,
                           component="speech_encoder")
    np.testing.assert_array_equal(stored.panels[0].item_ids, sorted(points["item_id"]))
    alone = rc.stored_map(_points(layers=(0,)), _placements(layers=(0,)), LANGUAGES,
                          component="speech_encoder")
    (joint_image,), (alone_image,) = stored.figure.layout.images, alone.figure.layout.images
    assert joint_image.source != alone_image.source  # the text points are drawn too


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
    """Sessions run in threads and share one StoredMap: copies made at once all keep every
    trace's type and the stored figure stays as built (plotly's copy takes each source trace's
    type out for a moment, so copies are made one at a time). A map's own traces are all
    scatter, which a lost type would not show, so the stored figure here holds WebGL traces."""
    import threading

    import plotly.graph_objects as go

    rng = np.random.default_rng(0)
    n = 20_000
    figure = go.Figure([go.Scattergl(x=rng.random(n), y=rng.random(n)) for _ in range(4)])
    stored = rc.StoredMap(figure, {}, pd.Series(dtype=object))
    types = [t.type for t in stored.figure.data]
    wrong, errors = [], []

    def draw() -> None:
        try:
            for _ in range(10):
                fig = rc.clip_map_figure(stored, _placements(), component="speech_encoder")
                wrong.extend(t.type for t in fig.data if t.type != "scattergl")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and not wrong
    assert [t.type for t in stored.figure.data] == types == ["scattergl"] * len(types)


def _agreement_rows(shuffled_values: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for layer, (name, values) in enumerate(shuffled_values.items()):
        common = {"layer": layer, "layer_name": name, "measure": "rsa", "lang": "eng_Latn",
                  "corpus_scope": "language", "speech_component": "speech_encoder"}
        rows.append({**common, "kind": "recording", "value": 0.5})
        rows += [{**common, "kind": "corpus", "value": v} for v in (0.6, 0.7, 0.8)]
        rows += [{**common, "kind": "shuffled", "value": float(v)} for v in values]
    return pd.DataFrame(rows)


def test_agreement_figure_sends_the_baseline_as_box_statistics():
    """The shuffled baseline's thousands of values go as five numbers per layer (the box the
    browser drew from them without points: whiskers to the extremes); the corpus's own pairs
    keep every point."""
    from core.box_stats import box_stats

    rng = np.random.default_rng(4)
    values = {"L0": rng.normal(0.0, 0.1, 500), "L1": np.append(rng.normal(0.2, 0.1, 499), 3.0),
              "L2": np.full(10, np.nan)}  # a layer without values gets no box
    fig = rc.agreement_figure(_agreement_rows(values))
    corpus, shuffled, clip = fig.data
    assert corpus.boxpoints == "all" and len(corpus.y) == 9
    assert shuffled.y is None and list(shuffled.x) == ["L0", "L1"]
    for i, name in enumerate(("L0", "L1")):
        box = box_stats(values[name])
        assert (shuffled.q1[i], shuffled.median[i], shuffled.q3[i], shuffled.lowerfence[i],
                shuffled.upperfence[i]) == (box.q1, box.median, box.q3, box.minimum,
                                            box.maximum)
    assert shuffled.upperfence[1] == 3.0  # no value drawn as a point: the extreme stays shown
    assert list(clip.y) == [0.5, 0.5, 0.5]
    json.loads(fig.to_json())


def test_agreement_table_names_its_columns_for_a_reader():
    """The summary's ids (corpus_p10, shuffled_mean, ...) are shown under names a reader
    understands, each with help text; the values are the summary's own."""
    from core.recording import agreement_summary

    rows = _agreement_rows({"L0": np.array([0.1, 0.2]), "L1": np.array([0.0, 0.3])})
    summary = agreement_summary(rows.assign(text_component="text_decoder"))
    table, column_help = rc.agreement_table(
        summary.drop(columns=["text_component", "speech_component", "layer"]))
    assert list(table.columns) == [
        "layer", "measure", "your clip", "corpus, same sentence: mean", "corpus: 10th percentile",
        "corpus: 90th percentile", "other sentence (chance): mean", "your clip's percentile",
        "corpus pairs", "corpus pairs from"]
    assert set(column_help) == set(table.columns) and all(column_help.values())
    assert not [c for c in table.columns if "_" in c]
    assert list(table["measure"]) == ["profile correlation (RSA)"] * 2
    assert list(table["corpus pairs from"]) == ["the clip's language"] * 2
    assert list(table["other sentence (chance): mean"]) == pytest.approx([0.15, 0.15])
    assert list(table["your clip"]) == [0.5, 0.5]


# ------------------------------------------------------------------------------- language colours

def _cielab(hex_colour: str, alpha: float = 1.0) -> np.ndarray:
    """CIELAB (D65) of ``hex_colour`` drawn at opacity ``alpha`` on white."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
    rgb = alpha * rgb + (1.0 - alpha)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_language_colours_differ_as_the_maps_draw_them_and_leave_the_clips_alone():
    """Stored points are faded on white (``STORED_OPACITY``) and carry no hover text, so their
    colour is how a reader tells the languages apart; a CIE76 difference of 10 or more is
    clearly visible side by side. The clip's own markers keep colours of their own."""
    from dashboard.charts.theme import LANGUAGE_PALETTE

    faded = {c: _cielab(c, rc.STORED_OPACITY) for c in LANGUAGE_PALETTE}
    for a, b in itertools.combinations(LANGUAGE_PALETTE, 2):
        assert np.linalg.norm(faded[a] - faded[b]) >= 10, (a, b)
    for clip_colour in rc.QUERY_COLOURS.values():
        assert clip_colour not in LANGUAGE_PALETTE
        for colour, lab in faded.items():
            assert np.linalg.norm(_cielab(clip_colour) - lab) >= 20, (clip_colour, colour)


def test_a_language_has_one_colour_in_the_neighbour_chart_and_the_maps():
    """The neighbour chart shows the languages among the neighbours, the maps every stored
    language: each chart choosing colours by what it shows gave German one colour in one and
    another in the other."""
    languages = pd.concat([LANGUAGES, pd.DataFrame({
        "lang": ["fra_Latn"], "name": ["French"], "resource_level": ["high"],
        "whisper_hours": [0.9]})], ignore_index=True)
    neighbours = pd.DataFrame([
        {"component": "speech_encoder", "layer": layer, "layer_name": f"L{layer}", "rank": rank,
         "score": 0.9 - 0.1 * rank, "lang": "deu_Latn", "modality": "speech",
         "sentence_id": rank, "text": "satz", "query": "recording"}
        for layer in (0, 1) for rank in (1, 2)])
    points = _points()
    points.loc[points["item_id"] == 104, "lang"] = "fra_Latn"
    scores = rc.neighbour_score_figure(neighbours, languages, "speech_encoder")
    maps = rc.map_figure(points, _placements(), languages, component="speech_encoder")
    in_scores = {t.name: t.marker.color for t in scores.data if t.name == "German"}
    in_maps = {t.name: t.marker.color for t in maps.data if t.legend == rc.LANGUAGE_LEGEND}
    assert set(in_maps) == {"English", "German", "French"} and len(set(in_maps.values())) == 3
    assert in_scores == {"German": in_maps["German"]}
