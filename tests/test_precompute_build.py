"""precompute build end to end: the pipeline with a fake model whose answers are known, crash and
signal safety, the tiny random Whisper store, and every model family's tiny random config."""
# ruff: noqa: F811 - fake_setup is precompute_helpers' fixture, imported to be requested here

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.item_audio import file_sha256, waveform_sha256
from core.models import registry
from core.store import Store
from precompute import measure
from precompute.cli import main
from precompute_helpers import (
    FAKE_CORPUS,
    FAKE_LANGS,
    SAMPLES_PER_POSITION,
    FakeAdapter,
    fake_argv,
    fake_registry,
    fake_setup,  # noqa: F401 - a fixture
    fake_speech,
)
from tests.conftest import (
    STUDY_STORE_MODELS,
    TINY_STORE_LANGS,
    TINY_STORE_MODEL,
    TINY_STORE_N_SENTENCES,
    study_run,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_build_with_fake_model_stores_what_the_model_said(fake_setup, tmp_path):
    out = tmp_path / "fake.duckdb"
    assert main(fake_argv(fake_setup, out, "--activation-dtype", "float32")) == 0
    fake = FakeAdapter()
    with Store.open(out) as store:
        (run_id,) = store.runs().run_id
        run = store.run(run_id)
        assert run["status"] == "complete"
        config = run["config"]
        assert config["langs"] == FAKE_LANGS and config["n_permutations"] == 4
        assert config["command_line"][:3] == ["build", "--corpus", str(fake_setup)]
        assert config["text_length_unit"] == "tokens" and config["transcribed"]
        assert config["pooling"] == "mean"
        assert config["components"]["text_decoder"]["space"] == FakeAdapter.space
        assert {"python", "torch", "duckdb", "numpy", "espeak-ng", "git_commit"} <= set(run["versions"])

        # items: transcripts and CER from the model, token counts from the model
        speech = store.items("speech", run_id=run_id).set_index(["lang", "sentence_id"])
        assert (speech.loc["eng_Latn", "cer"] == 0).all()
        assert (speech.loc["deu_Latn", "cer"] == 1).all()
        assert speech.loc[("eng_Latn", 2), "transcript"] == FAKE_CORPUS["eng_Latn"][2]
        assert speech.loc[("deu_Latn", 3), "duration_s"] == pytest.approx(4 * SAMPLES_PER_POSITION / 16_000)
        text = store.items("text", run_id=run_id).set_index(["lang", "sentence_id"])
        assert text.loc[("eng_Latn", 1), "n_tokens"] == len(FAKE_CORPUS["eng_Latn"][1].split())

        # activations: each item's stored vector is the model's state for that very sentence
        for component, layer, n_layers in (("speech_encoder", 3, 5), ("text_decoder", 1, 3)):
            items, vectors = store.activations(run_id, component, layer)
            assert len(items) == 18
            expected = np.stack([fake.state(lang, sid, n_layers)[layer]
                                 for lang, sid in zip(items.lang, items.sentence_id)])
            np.testing.assert_allclose(vectors, expected, rtol=1e-6)
            # pooled positions recorded per item (the fake pools p + 1 positions for sentence p)
            np.testing.assert_array_equal(items.n_positions, items.sentence_id + 1)
        layers = store.layers(run_id)
        assert layers[layers.component == "speech_encoder"].stage.tolist() == ["encoder"] * 5
        assert layers.depth.between(0, 1).all()

        # metrics: layers aligned by depth, and the answers the construction implies
        metrics = store.metrics(run_id, metric="paired_cosine")
        text_speech = metrics[metrics.pairing == "text-speech"]
        assert sorted(set(zip(text_speech.layer_a, text_speech.layer_b, text_speech.depth))) == \
            [(0, 0, 0.0), (1, 2, 0.5), (2, 4, 1.0)]
        same_lang = text_speech[text_speech.lang_a == text_speech.lang_b]
        np.testing.assert_allclose(same_lang.value, 1.0, atol=1e-9)
        other = text_speech[(text_speech.lang_a != text_speech.lang_b) & (text_speech.layer_a == 0)]
        assert (other.value < 0.9).all()
        retrieval = store.metrics(run_id, metric="retrieval", pairing="text-speech")
        np.testing.assert_allclose(retrieval[retrieval.lang_a == retrieval.lang_b].value, 1.0)
        text_text = store.metrics(run_id, metric="paired_cosine", pairing="text-text")
        by_layer = text_text.groupby("layer_a").value.mean()
        assert by_layer[0] < by_layer[1] < by_layer[2] == pytest.approx(1.0)
        speech_pairs = store.metrics(run_id, pairing="speech-speech")
        assert sorted(speech_pairs.layer_a.unique()) == [0, 1, 2, 3, 4]
        cross = speech_pairs[speech_pairs.lang_a != speech_pairs.lang_b]
        assert (cross.lang_a < cross.lang_b).all()
        # all three languages have a second espeak-ng voice in the table: each gets a voice-change
        # row per layer and metric (same language, first voice vs second)
        voice = speech_pairs[speech_pairs.lang_a == speech_pairs.lang_b]
        assert set(voice.lang_a) == {"eng_Latn", "deu_Latn", "swh_Latn"}
        assert len(voice) == 3 * 5 * speech_pairs.metric.nunique()
        with_voices = store.items("speech", all_voices=True)
        second = with_voices[with_voices.voice_rank == 1]
        assert sorted(set(second.lang)) == ["deu_Latn", "eng_Latn", "swh_Latn"]
        assert len(second) == 3 * 6
        assert second.voice.str.endswith("+f3").all()
        assert not store.items("speech").voice_rank.any()
        # where each speech item's audio came from: the checksum of the waveform the model heard
        sources = store.item_sources().merge(with_voices, on="item_id")
        assert len(sources) == len(with_voices) and sources.path.isna().all()
        assert sources.waveform_sha256.tolist() == [
            waveform_sha256(fake_speech(None, r.lang, r.sentence_id, voice_rank=r.voice_rank))
            for r in sources.itertuples()]
        # the fake family publishes no per-language amounts: Whisper's levels, labelled a proxy
        levels = store.run_languages(run_id)
        assert levels.lang.tolist() == sorted(FAKE_LANGS)
        assert levels.level_source.str.startswith("proxy: fake-model").all()
        n_pairs = 3 * 3 + 5 * (3 + 3) + 3 * 9  # text-text, speech-speech (+ 3 voice pairs), text-speech
        assert len(store.metrics(run_id)) == n_pairs * 6
        assert set(store.metrics(run_id).pooling) == {"mean"}
        assert store.metrics(run_id).shared_space.all()
        assert store.metrics(run_id).length_baseline.notna().any()
        # bootstrap values stored per row, intervals centred on the value
        rows = store.metrics(run_id, metric="svcca", with_resamples=True)
        assert rows.resamples.notna().all() and set(rows.ci_method) == {"bootstrap_se"}
        finite = rows[rows.ci_low.notna()]
        assert ((finite.ci_low <= finite.value) & (finite.value <= finite.ci_high)).all()
        # SVCCA at the k the 6 sentences allow (k < n / 2), for the pairs findings read
        variants = store.metric_variants(run_id)
        assert set(variants.variant) == {"svcca_k"}  # 6 sentences: too few to length-match
        assert {json.loads(p)["k"] for p in variants.params} == {2}
        assert not ((variants.pairing == "text-speech") & (variants.lang_a != variants.lang_b)).any()

        # projections: joint text+speech maps at matching depths, speech-only for the others
        projections = store.projections(run_id)
        assert len(projections) == 3 * 36 + 2 * 18
        joint = projections[(projections.component == "speech_encoder") & (projections.layer == 2)]
        assert json.loads(joint.params.iloc[0])["joint"] == ["text_decoder:1", "speech_encoder:2"]
        assert set(projections[projections.layer == 3].modality) == {"speech"}
        assert np.isfinite(projections[["x", "y"]].to_numpy()).all()


def test_build_records_every_model_as_its_own_run(fake_setup, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "SHORT_NAMES",
                        (*registry.SHORT_NAMES, registry.ShortName("fake-model-2", "fake")))
    out = tmp_path / "two.duckdb"
    assert main(fake_argv(fake_setup, out, "--model", "fake-model-2", "--no-umap",
                          "--metrics", "svcca,paired_cosine")) == 0
    with Store.open(out) as store:
        runs = store.runs()
        assert runs.model.tolist() == ["fake-model", "fake-model-2"]
        first_id, second_id = runs.run_id
        # transcripts are per run: each model's own
        for run_id in (first_id, second_id):
            speech = store.items("speech", run_id=run_id)
            assert speech.transcript.notna().all()
        assert store.items("speech").transcript.isna().all()  # no run named: no measurement
        assert store.metric_names(runs.run_id.iloc[1]) == ["paired_cosine", "svcca"]
        assert store.counts()["projections"] == 0
        assert store.counts()["items"] == 36 + 3 * 6  # shared by both runs (with second voices)


@pytest.mark.slow
def test_crash_mid_build_keeps_the_old_store(fake_setup, tmp_path, monkeypatch):
    out = tmp_path / "lens.duckdb"
    assert main(fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca")) == 0
    with Store.open(out) as store:
        old_runs = store.runs().run_id.tolist()

    reader = Store.open(out)  # a dashboard holding the old file open
    reached = []

    def crash(*args, **kwargs):
        reached.append(True)
        raise RuntimeError("simulated crash after activations and metrics were written")

    monkeypatch.setattr(measure, "compute_projections", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(fake_argv(fake_setup, out, "--metrics", "svcca"))
    assert reached  # it crashed mid-build, not before starting
    assert reader.runs().run_id.tolist() == old_runs
    reader.close()
    with Store.open(out) as store:
        assert store.runs().run_id.tolist() == old_runs
        assert store.runs().status.tolist() == ["complete"]
    # no temp store; the finished parts wait in lens.duckdb.parts/ for a rerun to resume from
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "lens.duckdb", "lens.duckdb.parts"]
    monkeypatch.undo()
    fake_registry(monkeypatch)
    assert main(fake_argv(fake_setup, out, "--metrics", "svcca")) == 0  # resumes, then publishes
    with Store.open(out) as store:
        assert store.runs().run_id.tolist()[0] == old_runs[0] and len(store.runs()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "lens.duckdb"]


@pytest.mark.slow
def test_sigterm_mid_build_removes_the_temp_file(tmp_path):
    out = tmp_path / "killed.duckdb"
    argv = [sys.executable, "-m", "precompute", "build", "--langs", "eng_Latn", "--n-sentences", "4",
            "--model", "whisper-tiny-random", "--out", str(out), "--speech-cache", str(tmp_path / "c")]
    process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("killed.duckdb.parts/*/items/*.parquet")):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the build never wrote a part"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    # 143 (SystemExit from our handler), or 1 when DuckDB turned the signal into "Query interrupted"
    assert process.wait(timeout=60) != 0
    process.stderr.close()
    # no store, no temp file (store or part): only the finished parts, for a rerun to resume from
    assert not out.exists() and not list(tmp_path.rglob("*.tmp-*"))
    assert {p.name for p in tmp_path.glob("killed.duckdb*")} <= {"killed.duckdb.parts"}


def test_tiny_store_end_to_end(tiny_store_path):
    n_items = len(TINY_STORE_LANGS) * TINY_STORE_N_SENTENCES
    with Store.open(tiny_store_path) as store:
        runs = store.runs()
        assert runs.model.tolist() == [TINY_STORE_MODEL] and runs.status.tolist() == ["complete"]
        run_id = runs.run_id.iloc[0]
        assert store.languages().lang.tolist() == sorted(TINY_STORE_LANGS)
        assert set(store.languages().resource_level) == {"high", "medium", "low"}
        components = store.components(run_id)
        assert components.component.tolist() == ["speech_encoder", "text_decoder"]
        n_layers = int(components.n_layers.iloc[0])
        speech = store.items("speech", run_id=run_id)
        assert len(speech) == n_items and speech.duration_s.gt(0.5).all()
        assert speech.transcript.notna().all() and speech.cer.notna().all()
        assert speech.voice.str.startswith("espeak-ng").all()
        levels = store.run_languages(run_id)  # Whisper brings its own levels
        assert set(levels.resource_level) == {"high", "medium", "low"}
        assert levels.level_source.str.startswith("this model's training data").all()
        items, vectors = store.activations(run_id, "speech_encoder", n_layers - 1)
        assert vectors.shape == (n_items, int(components.dim.iloc[0])) and np.isfinite(vectors).all()
        metrics = store.metrics(run_id)
        # Whisper's encoder and decoder streams are different spaces: text-speech pairs get no
        # paired cosine or retrieval, the other pairings every metric
        n_metrics = len(store.metric_names(run_id))
        with_voices = store.items("speech", all_voices=True)
        n_second = with_voices[with_voices.voice_rank == 1].lang.nunique()  # voice-change pairs
        assert len(metrics) == (3 + 3 + n_second) * n_layers * n_metrics \
            + 9 * n_layers * (n_metrics - 2)
        text_speech = metrics[metrics.pairing == "text-speech"]
        assert not text_speech.shared_space.any()
        assert set(text_speech.metric) == {"svcca", "linear_cka", "cka_debiased", "mutual_knn"}
        assert metrics.ci_low.notna().any() and metrics.baseline_mean.notna().any()
        assert set(metrics.stage_a.dropna()) >= {"frontend", "decoder"}
        projections = store.projections(run_id)
        assert len(projections) == 2 * n_items * n_layers
        assert set(projections.modality) == {"text", "speech"}
        assert projections.groupby(["component", "layer"]).modality.nunique().eq(1).all()


def test_activations_frame_matches_pandas_types(tiny_store_path):
    with Store.open(tiny_store_path) as store:
        run_id = store.runs().run_id.iloc[0]
        items, _ = store.activations(run_id, "text_decoder", 0, langs=["swh_Latn"])
    assert isinstance(items, pd.DataFrame) and set(items.lang) == {"swh_Latn"}
    assert items.sentence_id.tolist() == sorted(items.sentence_id)


@pytest.mark.parametrize("model", STUDY_STORE_MODELS)
def test_every_family_runs_the_whole_pipeline(model, study_store_path):
    """Tiny random configs of the real architectures through `precompute build` (one store, one
    run each): layer points with their stages, lengths before/after length adaptation, metrics
    only where defined."""
    with Store.open(study_store_path) as store:
        run_id = study_run(store, model)
        assert store.run(run_id)["status"] == "complete"
        config = store.run(run_id)["config"]
        components = store.components(run_id)
        layers = store.layers(run_id)
        metrics = store.metrics(run_id)
        assert set(layers.component) == set(components.component)
        assert layers.groupby("component").size().to_dict() == \
            dict(zip(components.component, components.n_layers))
        assert config["components"].keys() == set(components.component)
        # coordinate-wise metrics exist exactly where the two points share a space
        space = {(r.component, r.layer): r.space for r in layers.itertuples()}
        same = [space[(r.component_a, r.layer_a)] == space[(r.component_b, r.layer_b)]
                for r in metrics.itertuples()]
        assert metrics.shared_space.tolist() == same
        coordinate = metrics.metric.isin(["paired_cosine", "retrieval"])
        assert metrics[coordinate].shared_space.all()
        assert (~metrics[~coordinate].shared_space).any() or metrics.shared_space.all()
        if components.modality.eq("speech").any():
            pairs = {tuple(p) for p in config["modality_pairs"]}
            measured = set(zip(*[metrics[metrics.pairing == "text-speech"][c]
                                 for c in ("component_a", "component_b")]))
            assert measured == pairs
        else:
            assert set(metrics.pairing) == {"text-text"}
        # length adaptation: its after point pools over fewer positions than its before point
        reducing = layers.stage.isin(["length_adaptor", "pooler"])
        first = reducing & ~reducing.shift(fill_value=False) \
            & (layers.component == layers.component.shift())
        adapted = layers[first]  # the "after" point of each length-reducing stage
        lengths = store.length_adaptation(run_id)
        for point in adapted.itertuples():
            own = lengths[lengths.component == point.component].pivot(
                index="item_id", columns="layer", values="n_positions")
            assert (own[point.layer] < own[point.layer - 1]).all()
        assert store.projections(run_id).groupby(["component", "layer"]).ngroups >= \
            len(layers) - metrics[metrics.shared_space & (metrics.pairing == "text-speech")] \
            .groupby(["component_a", "layer_a"]).ngroups


def test_a_recorded_item_keeps_its_file_and_checksum(tmp_path):
    """A corpus recording's items part names the file the build read and both checksums (the
    file's bytes, the 16 kHz waveform's), so the dashboard can play it later and tell if it moved
    or changed; a synthesised item has only the waveform's."""
    import soundfile as sf

    from core.audio import load_audio
    from core.corpus import ParallelCorpus
    from precompute.extract import language_items
    from precompute.staging import Workspace

    clip = tmp_path / "clip.wav"
    sf.write(clip, np.linspace(-0.2, 0.2, 8_000, dtype=np.float32), 16_000)
    corpus = ParallelCorpus("one", ["eng_Latn"], [0], {"eng_Latn": ["A short clip."]},
                            {"eng_Latn": [str(clip)]}, "a test")
    items = language_items(Workspace(tmp_path / "s.duckdb"), "run", corpus, "eng_Latn", None)
    speech = items[items.modality == "speech"].iloc[0]
    assert speech.voice == "recording" and speech.source_path == str(clip.resolve())
    assert speech.file_sha256 == file_sha256(clip)
    assert speech.waveform_sha256 == waveform_sha256(load_audio(clip))
