"""core.recording on hand-made references (exact answers), then end to end on the tiny store with
the tiny random Whisper (synthetic speech and a real FLEURS clip), and Whisper's language ID."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core import recording as rec
from core.audio import decode_upload
from core.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------- a reference built by hand

def _point(component, layer, modality, space, vectors, sentences, langs, texts=None):
    n = len(vectors)
    items = pd.DataFrame({
        "item_id": np.arange(n) + (0 if modality == "text" else 1000),
        "sentence_id": sentences, "lang": langs, "modality": modality,
        "text": texts if texts is not None else [f"sentence {s} in {g}" for s, g in
                                                 zip(sentences, langs, strict=True)]})
    return rec.ReferencePoint(component, layer, f"layer {layer}", layer / 2, space, modality,
                              items, rec.unit_rows(np.asarray(vectors, dtype=np.float32)))


def _reference(text_vectors, speech_vectors, sentences, langs, *, shared=False,
               projections=None) -> rec.Reference:
    """One layer (0) per component; text and speech in one space when ``shared``."""
    components = pd.DataFrame({
        "component": ["text_path", "speech_path"], "modality": ["text", "speech"],
        "space": ["m/shared" if shared else "m/text", "m/shared" if shared else "m/speech"]})
    points = {
        ("text_path", 0): _point("text_path", 0, "text", components["space"][0], text_vectors,
                                 sentences, langs),
        ("speech_path", 0): _point("speech_path", 0, "speech", components["space"][1],
                                   speech_vectors, sentences, langs),
    }
    return rec.Reference("run", "model", components, points,
                         projections if projections is not None else pd.DataFrame(),
                         [("text_path", "speech_path")])


def _states(speech, text, lang="eng_Latn", frames=None, text_str="hello") -> rec.ClipStates:
    pooled = {"speech_path": np.asarray(speech, dtype=np.float32)[None],
              "text_path": np.asarray(text, dtype=np.float32)[None]}
    frame_map = {} if frames is None else {"speech_path": np.asarray(frames, np.float32)[None]}
    times = {} if frames is None else {"speech_path": np.arange(len(frames)) * 0.02}
    return rec.ClipStates(lang, text_str, pooled, frame_map, times)


@pytest.fixture
def corpus():
    """12 sentences x 2 languages; text = an orthogonal rotation of speech (+ a little noise), so
    the two spaces hold the same geometry in different bases."""
    rng = np.random.default_rng(0)
    n_sent, dim = 12, 16
    base = rng.standard_normal((n_sent, dim))
    speech = np.concatenate([base + 0.1 * rng.standard_normal((n_sent, dim)) for _ in range(2)])
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    text = speech @ rotation + 0.05 * rng.standard_normal(speech.shape)
    sentences = np.tile(np.arange(n_sent), 2)
    langs = np.repeat(["eng_Latn", "deu_Latn"], n_sent)
    return {"speech": speech, "text": text, "rotation": rotation, "sentences": sentences,
            "langs": langs, "base": base}


def test_neighbours_are_cosine_within_the_space(corpus):
    ref = _reference(corpus["text"], corpus["speech"], corpus["sentences"], corpus["langs"])
    query = corpus["speech"][3] * 5.0  # scale does not matter to a cosine
    states = _states(query, corpus["text"][3])
    table = rec.nearest_neighbours(ref, states, k=3)
    speech_rows = table[table["component"] == "speech_path"]
    assert list(speech_rows["rank"]) == [1, 2, 3]
    assert speech_rows.iloc[0]["item_id"] == 1003 and speech_rows.iloc[0]["score"] == \
        pytest.approx(1.0, abs=1e-5)
    unit = rec.unit_rows(corpus["speech"])
    expected = np.sort(unit @ rec.unit_rows(query))[::-1][:3]
    np.testing.assert_allclose(speech_rows["score"], expected, atol=1e-5)
    # different spaces: the recording is compared with stored speech only, the text with text
    assert set(speech_rows["modality"]) == {"speech"}
    assert set(table.loc[table["component"] == "text_path", "modality"]) == {"text"}
    assert set(table["query"]) == {"recording", "transcript"}


def test_shared_space_neighbours_include_the_other_modality(corpus):
    ref = _reference(corpus["speech"], corpus["speech"], corpus["sentences"], corpus["langs"],
                     shared=True)
    assert rec.candidate_points(ref, "speech_path", 0) == [("speech_path", 0), ("text_path", 0)]
    table = rec.nearest_neighbours(ref, _states(corpus["speech"][0], corpus["speech"][0]), k=2)
    first = table[table["component"] == "speech_path"]
    assert set(first["modality"]) == {"speech", "text"}  # the same vector stored as both


def test_ranking_orders_by_score_then_item_id_as_a_stable_sort_would(corpus):
    """Ties (the same vector stored as text and speech, and repeated vectors) are broken by item
    id and then by candidate order, exactly as pandas' stable sort of the whole candidate table;
    the ranking keeps arrays only and builds rows for the items asked for."""
    speech = np.concatenate([corpus["speech"][:6], corpus["speech"][:6]])  # each vector twice
    ref = _reference(speech, speech, np.tile(np.arange(6), 2), np.repeat(["eng_Latn", "deu_Latn"],
                                                                          6), shared=True)
    points = rec.candidate_points(ref, "speech_path", 0)
    query = speech[2]
    ranking = rec.rank_candidates(ref, points, query)
    frames = []
    for comp, layer in points:
        rows = ref.points[(comp, layer)].items.copy()
        rows["score"] = ref.points[(comp, layer)].unit @ rec.unit_rows(query)
        rows["stored_component"], rows["stored_layer"] = comp, layer
        frames.append(rows)
    oracle = pd.concat(frames, ignore_index=True).sort_values(
        ["score", "item_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(ranking.frame(ref), oracle)
    pd.testing.assert_frame_equal(ranking.frame(ref, 5), oracle.head(5))
    np.testing.assert_array_equal(ranking.column(ref, "sentence_id"), oracle["sentence_id"])
    assert oracle["score"].iloc[0] == oracle["score"].iloc[3]  # the test has ties to break


def test_neighbour_table_is_layer_by_rank(corpus):
    ref = _reference(corpus["text"], corpus["speech"], corpus["sentences"], corpus["langs"])
    table = rec.neighbour_table(rec.nearest_neighbours(ref, _states(corpus["speech"][0],
                                                                    corpus["text"][0]), k=4),
                                "speech_path")
    assert list(table.columns) == ["#1", "#2", "#3", "#4"] and list(table.index) == ["layer 0"]
    assert table.iloc[0, 0].startswith("eng_Latn · sentence 0 in eng_Latn (1.000)")


def test_masked_pearson_matches_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 30)), rng.standard_normal((4, 30))
    mask = rng.random(30) > 0.3
    got = rec.masked_pearson(a, b, mask)
    for i in range(4):
        assert got[i] == pytest.approx(np.corrcoef(a[i, mask], b[i, mask])[0, 1])
    assert np.isnan(rec.masked_pearson(a[:1], b[:1], np.arange(30) < 2))[0]
    # per-row masks (float32 after centring): close to float64 even on anisotropic profiles,
    # cosines near 0.9 that vary by a few hundredths, where raw moments would cancel
    a, b = 0.9 + 0.03 * rng.standard_normal((6, 4000)), 0.8 + 0.05 * rng.standard_normal((6, 4000))
    rows = rng.random((6, 4000)) > 0.01
    got = rec.masked_pearson(a, b, rows)
    for i in range(6):
        assert got[i] == pytest.approx(np.corrcoef(a[i, rows[i]], b[i, rows[i]])[0, 1], abs=1e-6)
    # a constant row has no correlation, in both paths
    a[2] = 0.123
    assert np.isnan(rec.masked_pearson(a, b, rows)[2])
    assert np.isnan(rec.masked_pearson(a, b, rows[0])[2])
    assert np.isnan(rec.masked_pearson(a, b, np.zeros(4000, dtype=bool))).all()


def test_masked_pearson_same_columns_path_equals_per_row_masks():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((5, 40)), rng.standard_normal((5, 40))
    mask = rng.random(40) > 0.4
    np.testing.assert_allclose(rec.masked_pearson(a, b, mask),
                               rec.masked_pearson(a, b, np.tile(mask, (5, 1))), atol=1e-6)
    # one profile against many rows (the frame view) broadcasts like the per-row path
    np.testing.assert_allclose(rec.masked_pearson(a, b[:1], mask),
                               rec.masked_pearson(a, np.tile(b[:1], (5, 1)), np.tile(mask, (5, 1))),
                               atol=1e-6)
    # ... and so does a broadcast view of it (stride 0), exactly as numpy's correlation
    view = np.broadcast_to(b[0], a.shape)
    got = rec.masked_pearson(a, view, mask)
    for i in range(5):
        assert got[i] == pytest.approx(np.corrcoef(a[i, mask], b[0, mask])[0, 1], abs=1e-12)
    np.testing.assert_allclose(got, rec.masked_pearson(a, np.tile(b[:1], (5, 1)), mask),
                               rtol=0, atol=1e-12)
    constant = a.copy()
    constant[3] = 0.5
    assert np.isnan(rec.masked_pearson(constant, view, mask)[3])
    assert np.isnan(rec.masked_pearson(a, np.broadcast_to(np.ones(40), a.shape), mask)).all()


def test_corpus_side_is_computed_once_and_reused_unchanged(corpus):
    """The corpus and shuffled rows do not depend on the clip: a second clip reads them from the
    reference's cache, and they equal those of a fresh reference."""
    ref = _reference(corpus["text"], corpus["speech"], corpus["sentences"], corpus["langs"])
    first = rec.agreement(ref, _states(corpus["speech"][1], corpus["text"][1]), sentence_id=1)
    assert len(ref.__dict__["_corpus_agreement_cache"]) == 1
    second = rec.agreement(ref, _states(corpus["speech"][4], corpus["text"][9]), sentence_id=4)
    assert len(ref.__dict__["_corpus_agreement_cache"]) == 1
    fresh = rec.agreement(_reference(corpus["text"], corpus["speech"], corpus["sentences"],
                                     corpus["langs"]),
                          _states(corpus["speech"][4], corpus["text"][9]), sentence_id=4)
    pd.testing.assert_frame_equal(second, fresh)
    stored = ~first["kind"].eq("recording")
    pd.testing.assert_frame_equal(first[stored].reset_index(drop=True),
                                  second[stored].reset_index(drop=True))
    assert first.loc[~stored, "value"].iloc[0] != second.loc[~stored, "value"].iloc[0]


def test_agreement_across_spaces_is_basis_free(corpus):
    ref = _reference(corpus["text"], corpus["speech"], corpus["sentences"], corpus["langs"])
    # a new recording of sentence 5: speech near the stored ones, its text the rotated speech
    rng = np.random.default_rng(7)
    speech = corpus["base"][5] + 0.1 * rng.standard_normal(16)
    good = rec.agreement(ref, _states(speech, speech @ corpus["rotation"]), sentence_id=5)
    summary = rec.agreement_summary(good).iloc[0]
    assert summary["measure"] == rec.RSA and summary["corpus_scope"] == "language"
    assert summary["n_corpus"] == 12  # the 12 English same-sentence pairs
    assert summary["corpus_mean"] > 0.9 > summary["shuffled_mean"] + 0.5
    assert summary["recording"] > 0.9
    # the text of another sentence disagrees, like the shuffled baseline
    bad = rec.agreement_summary(rec.agreement(
        ref, _states(speech, corpus["text"][0]), sentence_id=5)).iloc[0]
    assert bad["recording"] < summary["corpus_p10"]
    # a plain cosine across the two spaces would say nothing: it is not what is reported
    assert abs(float(rec.unit_rows(speech) @ rec.unit_rows(speech @ corpus["rotation"]))) < 0.9


def test_agreement_in_a_shared_space_is_the_cosine(corpus):
    ref = _reference(corpus["speech"], corpus["speech"], corpus["sentences"], corpus["langs"],
                     shared=True)
    rows = rec.agreement(ref, _states(corpus["speech"][2], corpus["speech"][2] * 3), None)
    clip = rows[rows["kind"] == "recording"].iloc[0]
    assert clip["measure"] == rec.COSINE and clip["value"] == pytest.approx(1.0, abs=1e-6)
    assert rows.loc[rows["kind"] == "corpus", "value"].to_numpy() == pytest.approx(1.0, abs=1e-5)
    shuffled = rows[rows["kind"] == "shuffled"]
    assert len(shuffled) == rec.N_SHUFFLES * 12 and shuffled["value"].max() < 0.99


def test_language_missing_from_the_corpus_uses_all_languages(corpus):
    ref = _reference(corpus["text"], corpus["speech"], corpus["sentences"], corpus["langs"])
    rows = rec.agreement(ref, _states(corpus["speech"][0], corpus["text"][0], lang="fra_Latn"))
    assert set(rows["corpus_scope"]) == {"all languages"}
    assert (rows["kind"] == "corpus").sum() == 24


def _map(ref: rec.Reference, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for (comp, layer), point in ref.points.items():
        frames.append(point.items.assign(component=comp, layer=layer, method="umap",
                                         x=rng.standard_normal(len(point.items)),
                                         y=rng.standard_normal(len(point.items)),
                                         params=json.dumps({"n_neighbors": 15})))
    return pd.concat(frames, ignore_index=True)


def test_placement_is_the_weighted_mean_of_the_nearest_positions(corpus):
    ref = _reference(corpus["text"], corpus["speech"], corpus["sentences"], corpus["langs"])
    ref.projections = _map(ref)
    before = ref.projections.copy()
    query = corpus["speech"][4]
    placed = rec.place_in_maps(ref, _states(query, corpus["text"][4]), k=3)
    assert set(placed["query"]) == {"recording", "transcript"}
    row = placed[placed["component"] == "speech_path"].iloc[0]
    unit = rec.unit_rows(corpus["speech"])
    scores = unit @ rec.unit_rows(query)
    order = np.argsort(-scores, kind="stable")[:3]
    weights = np.clip(scores[order], 0, None)
    coords = ref.projections[ref.projections["component"] == "speech_path"].set_index("item_id")
    expected = (weights[:, None] * coords.loc[order + 1000, ["x", "y"]].to_numpy()).sum(0) \
        / weights.sum()
    assert (row["x"], row["y"]) == pytest.approx(tuple(expected), abs=1e-6)
    assert row["neighbour_ids"] == tuple(int(i) + 1000 for i in order)
    # k = 1 sits on the nearest item; stored points never move; the same input, the same place
    one = rec.place_in_maps(ref, _states(query, corpus["text"][4]), k=1)
    one = one[one["component"] == "speech_path"].iloc[0]
    assert (one["x"], one["y"]) == pytest.approx(tuple(coords.loc[1004, ["x", "y"]]))
    pd.testing.assert_frame_equal(ref.projections, before)
    again = rec.place_in_maps(ref, _states(query, corpus["text"][4]), k=3)
    pd.testing.assert_frame_equal(placed, again)


def test_each_component_is_shown_in_its_own_first_map_method(corpus):
    ref = _reference(corpus["text"], corpus["speech"], corpus["sentences"], corpus["langs"])
    maps = _map(ref)
    # the text path has only "umap"; the speech path "pca" (first by name) and "umap"
    ref.projections = pd.concat([maps, maps[maps["component"] == "speech_path"].assign(
        method="pca")], ignore_index=True)
    methods = rec.map_methods(ref)
    assert methods == {"speech_path": "pca", "text_path": "umap"}
    # every component keeps a map in its method (one global method would leave one without)
    placed = rec.place_in_maps(ref, _states(corpus["speech"][4], corpus["text"][4]), k=3)
    shown = placed[placed["method"] == placed["component"].map(methods)]
    assert set(shown["component"]) == {"speech_path", "text_path"}
    prepared = {component for component, method in rec.map_panels_of(ref)
                if methods[component] == method}
    assert prepared == {"speech_path", "text_path"}
    ref.projections = pd.DataFrame()
    assert rec.map_methods(ref) == {}


def test_placement_with_only_negative_cosines_uses_equal_weights(corpus):
    ref = _reference(corpus["text"], corpus["speech"], corpus["sentences"], corpus["langs"])
    ref.projections = _map(ref)
    point = ref.points[("speech_path", 0)]
    rows = ref.projections[ref.projections["component"] == "speech_path"]
    far = -np.ones(16, dtype=np.float32)
    point.unit = rec.unit_rows(np.abs(corpus["speech"]))  # every stored cosine to ``far`` is < 0
    x, y, ids = rec.weighted_position(point, rows, far, k=4)
    coords = rows.set_index("item_id").loc[list(ids), ["x", "y"]].to_numpy()
    assert (x, y) == pytest.approx(tuple(coords.mean(axis=0)))


def test_frame_view_rows_are_layers_and_columns_frames(corpus):
    ref = _reference(corpus["text"], corpus["speech"], corpus["sentences"], corpus["langs"])
    speech = corpus["speech"][6]
    frames = np.stack([speech, speech, -speech, corpus["speech"][1]])
    views = rec.frame_agreement(ref, _states(speech, speech @ corpus["rotation"], frames=frames), 6)
    (view,) = views
    assert view.measure == rec.RSA and view.values.shape == (1, 4)
    np.testing.assert_allclose(view.times_s, [0, 0.02, 0.04, 0.06])
    # a frame equal to the pooled clip scores what the clip scores; its negation the opposite
    assert view.values[0, 0] == pytest.approx(view.pooled[0], abs=1e-6)
    assert view.values[0, 2] == pytest.approx(-view.pooled[0], abs=1e-6)
    assert view.values[0, 0] > view.values[0, 3]


def test_aligned_layer_and_language_mapping():
    assert [rec.aligned_layer(7, 7, i) for i in range(7)] == list(range(7))
    assert [rec.aligned_layer(5, 3, i) for i in range(5)] == [0, 1, 1, 2, 2]
    assert rec.aligned_layer(1, 4, 0) == 0
    assert rec.flores_for_whisper("de") == "deu_Latn"
    assert rec.flores_for_whisper("zh", prefer=["zho_Hans"]) == "zho_Hans"
    assert rec.flores_for_whisper("xx") is None


# ---------------------------------------------------------- the tiny store, tiny random Whisper

@pytest.fixture(scope="module")
def tiny(tiny_store_path):
    from core.models.registry import load_model

    with Store.open(tiny_store_path) as store:
        run_id = str(store.runs()["run_id"].iloc[0])
        reference = rec.load_reference(store, run_id)
    return reference, load_model("whisper-tiny-random", device="cpu")


def test_reference_holds_the_run(tiny):
    reference, _model = tiny
    assert reference.model == "whisper-tiny-random"
    assert set(reference.points) == {(c, i) for c in ("speech_encoder", "text_decoder")
                                     for i in range(3)}
    point = reference.points[("speech_encoder", 2)]
    assert point.unit.shape == (18, 64)
    np.testing.assert_allclose(np.linalg.norm(point.unit, axis=1), 1.0, atol=1e-5)
    assert reference.modality_pairs == [("text_decoder", "speech_encoder")]


def test_tiny_model_end_to_end_on_synthetic_speech(tiny):
    from core.audio import synthesize

    reference, model = tiny
    texts = reference.texts()
    sentence = texts[texts["lang"] == "eng_Latn"].iloc[1]
    wave = synthesize(sentence["text"], "en-us")
    states = rec.clip_states(model, wave, "eng_Latn", sentence["text"])
    # pooled exactly as the store pools (the adapter's own pooled_states)
    np.testing.assert_allclose(states.pooled["speech_encoder"],
                               model.pooled_states("speech_encoder", [wave], ["eng_Latn"])[0],
                               rtol=1e-4, atol=1e-5)
    assert states.frames["speech_encoder"].shape == (3, int(np.ceil(len(wave) / 320)), 64)
    result = rec.analyse(reference, states, k=4)
    assert result.matched == (int(sentence["sentence_id"]), 0.0, "eng_Latn")
    # the store's own item is the same espeak-ng clip: it is the nearest, at cosine 1
    top = result.neighbours[(result.neighbours["rank"] == 1)]
    assert (top["sentence_id"] == sentence["sentence_id"]).all()
    assert top["score"].to_numpy() == pytest.approx(1.0, abs=1e-3)
    assert (result.ranks["rank"] == 1).all() and len(result.ranks) == 6
    assert len(result.summary) == 3 and result.summary["n_corpus"].eq(6).all()
    assert len(result.placements) == 6 and result.placements[["x", "y"]].notna().all().all()
    assert result.frames[0].values.shape == states.frames["speech_encoder"].shape[:2]


def test_warm_up_runs_the_model_and_leaves_later_clips_unchanged(tiny):
    """The page warms a model up as it loads it: the model's speech and text paths run (and the
    transcript, where the model has one) on a synthetic clip; a clip's states afterwards are the
    states it has without the warm-up, and a language the model lacks is a no-op."""
    from core.audio import synthesize

    _reference, model = tiny
    wave = synthesize("The weather is cold today.", "en-us")
    before = rec.clip_states(model, wave, "eng_Latn", "The weather is cold today.")
    calls = []
    real = model.transcribe
    model.transcribe = lambda *a, **kw: calls.append(a) or real(*a, **kw)
    try:
        assert rec.warm_up(model) is True
        assert calls and len(calls[0][0][0]) == 5 * 16_000  # the 5-s synthetic clip
        assert rec.warm_up(model, lang="zzz_Latn") is False and len(calls) == 1
    finally:
        del model.transcribe
    assert not model._layer_cache and not model._encoder_cache  # emptied by the warm-up
    after = rec.clip_states(model, wave, "eng_Latn", "The weather is cold today.")
    for comp in before.pooled:
        np.testing.assert_array_equal(before.pooled[comp], after.pooled[comp])


def test_the_stored_side_is_prepared_before_a_clip_as_a_clip_would_use_it(tiny):
    """Before any clip, the page builds the maps' stored part and the chosen language's corpus
    side: the panels it derives from the run are those the clip is later placed into, and the
    clip's analysis then finds every corpus-side entry it needs already cached."""
    from core.audio import synthesize
    from dashboard.charts import recording as rc

    reference, model = tiny
    reference.__dict__.pop("_corpus_agreement_cache", None)
    assert rec.prepare_language(reference, "eng_Latn") == 3  # one per speech layer
    cached = dict(reference.__dict__["_corpus_agreement_cache"])
    assert "eng_Latn" in reference.__dict__["_normalised_texts"]
    wave = synthesize("The weather is cold today.", "en-us")
    result = rec.analyse(reference, rec.clip_states(model, wave, "eng_Latn",
                                                    "The weather is cold today."), k=4)
    assert reference.__dict__["_corpus_agreement_cache"].keys() == cached.keys()
    assert all(reference.__dict__["_corpus_agreement_cache"][key] is cached[key] for key in cached)
    prepared = rec.map_panels_of(reference)
    for component in dict.fromkeys(result.placements["component"]):
        method = str(result.placements["method"].iloc[0])
        panels, names = rc.map_panels(result.placements, component)
        assert prepared[(component, method)] == (panels, names)  # the page's cache key
    assert rec.prepare_language(reference, "zzz_Latn") == 0  # not in the run: nothing to prepare


def test_clip_without_text_skips_the_text_path(tiny):
    reference, model = tiny
    wave = (0.1 * np.sin(np.arange(16_000) / 5)).astype(np.float32)
    states = rec.clip_states(model, wave, "eng_Latn", "  ")
    assert set(states.pooled) == {"speech_encoder"}
    result = rec.analyse(reference, states)
    assert result.agreement.empty and result.frames == [] and result.matched is None
    assert set(result.neighbours["component"]) == {"speech_encoder"}


def test_real_fleurs_clip_on_the_tiny_store(tiny, shared_data):
    reference, model = tiny
    fleurs = shared_data("data", "fleurs_clips", "cuttledoc")
    clip = decode_upload((fleurs / "fleurs-en-001.ogg").read_bytes())
    text = (fleurs / "fleurs-en-001.txt").read_text(encoding="utf-8").strip()
    states = rec.clip_states(model, clip.waveform, "eng_Latn", text)
    result = rec.analyse(reference, states, k=3)
    assert result.matched is None  # a FLEURS sentence is not one of the bundled ones
    n_frames = int(np.ceil(len(clip.waveform) / 320))
    assert result.frames[0].values.shape == (3, n_frames)
    assert result.frames[0].times_s[-1] == pytest.approx((n_frames - 1) * 0.02)
    assert len(result.neighbours) == 2 * 3 * 3 and result.ranks.empty
    assert np.isfinite(result.summary["recording"]).all()


# ---------------------------------------------------------------------- language identification

def test_detect_language_on_the_tiny_model(tiny):
    _reference, model = tiny
    wave = (0.1 * np.random.default_rng(0).standard_normal(24_000)).astype(np.float32)
    probs = model.language_probabilities(wave)
    assert len(probs) == len(model._whisper_codes) and "en" in probs and "de" in probs
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= p <= 1.0 for p in probs.values())
    code, p = model.detect_language(wave)
    assert p == max(probs.values()) and probs[code] == p
    assert model.language_probabilities(wave, sampling_rate=8_000) != probs  # resampled first


@pytest.mark.slow
@pytest.mark.parametrize(("text", "voice", "code"), [
    ("The weather is cold and rainy this morning, so we stay at home.", "en-us", "en"),
    ("Ich trinke jeden Morgen zwei Tassen Kaffee und lese die Zeitung.", "de", "de"),
])
def test_whisper_base_identifies_english_and_german(text, voice, code):
    from core.audio import synthesize
    from core.models.registry import load_model

    model = _whisper_base(load_model)
    detected, probability = model.detect_language(synthesize(text, voice))
    assert detected == code and probability > 0.5


_BASE = {}


def _whisper_base(load_model):
    if "model" not in _BASE:
        _BASE["model"] = load_model("whisper-base", device="cpu", progress=False)
    return _BASE["model"]
