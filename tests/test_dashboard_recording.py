"""The "Your recording" page under AppTest: uploads through the file uploader on the tiny store
(tiny random Whisper, no real weights), every bad input, and runs that cannot take a recording."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest
from synthetic_store import TEXT_RUN_ID, write_synthetic_store

from dashboard import live, state

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGE = "views/recording.py"
TIMEOUT_S = 180
pytestmark = pytest.mark.usefixtures("one_thread")


def _wav(samples: np.ndarray, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sentence_clip(tiny_store_path):
    """An English sentence of the tiny store, spoken by espeak-ng (the store's own voice)."""
    from core.audio import synthesize
    from core.store import Store

    with Store.open(tiny_store_path) as store:
        items = store.items(modality="text")
    text = str(items[items["lang"] == "eng_Latn"].sort_values("sentence_id")["text"].iloc[2])
    return text, _wav(synthesize(text, "en-us"))


def _page(monkeypatch, store: Path) -> AppTest:
    monkeypatch.setenv(state.STORE_ENV, str(store))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    return at.switch_page(PAGE).run()


def _upload(at: AppTest, data: bytes, name: str = "clip.wav", lang: str | None = "eng_Latn",
            typed: str | None = None) -> AppTest:
    if lang is not None:
        at.selectbox(key="recording_lang").set_value(lang)
    if typed is not None:
        at.text_input(key="recording_typed").set_value(typed)
    at.file_uploader(key="recording_file").set_value((name, data, "audio/wav"))
    return at.run()


def _titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "")
            for c in at.get("plotly_chart")]


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_page_is_registered_and_waits_for_a_clip(monkeypatch, tiny_store_path):
    at = _page(monkeypatch, tiny_store_path)
    _clean(at)
    assert at.title[0].value == "Your recording"
    assert any("Upload or record a clip" in i.value for i in at.info)
    # while it waits: the stored maps the clip will be placed in, without a clip in them
    assert _titles(at) == ["Your clip in the stored maps · speech_encoder",
                           "Your clip in the stored maps · text_decoder"]
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        assert spec["layout"]["images"] and not [t for t in spec["data"]
                                                 if str(t.get("name", "")).startswith("your ")]
    assert at.radio(key="recording_source").options == ["Upload a file", "Record in the browser"]
    at.radio(key="recording_source").set_value("Record in the browser").run()
    _clean(at)
    assert len(at.audio_input) == 1


def test_upload_draws_every_chart(monkeypatch, tiny_store_path, sentence_clip):
    text, data = sentence_clip
    at = _upload(_page(monkeypatch, tiny_store_path), data)
    _clean(at)
    assert not at.error, [e.value for e in at.error]
    titles = _titles(at)
    for expected in ("Waveform", "Nearest stored items per layer · speech_encoder",
                     "Nearest stored items per layer · text_decoder",
                     "Your text-vs-speech agreement", "Your clip in the stored maps · speech_encoder",
                     "Your clip in the stored maps · text_decoder"):
        assert expected in titles
    assert any(t.startswith("Where the clip carries the sentence") for t in titles)
    assert titles.count("Your clip in the stored maps · speech_encoder") == 1  # not the waiting one
    for chart in at.get("plotly_chart"):
        assert json.loads(chart.proto.spec)["data"], "an empty chart"
    # the model's transcript is shown and editable (random weights: some tokens, not the text)
    area = at.text_area[0]
    shown = [c.value for c in at.caption if c.value.startswith("Model transcript")]
    assert area.value and shown and shown[0].startswith("Model transcript: “" + area.value[:40])
    # what is typed replaces it, and a stored sentence gets its rank chart; the model is not
    # asked for a transcript then (greedy decoding is a third of the page's time), as it says
    from core.models.whisper import WhisperAdapter

    calls = []
    original = WhisperAdapter.transcribe
    monkeypatch.setattr(WhisperAdapter, "transcribe",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    at.text_input(key="recording_typed").set_value(text).run()
    _clean(at)
    assert at.text_area[0].value == text
    assert "Rank of the sentence you said" in _titles(at)
    assert any("matches stored sentence" in i.value for i in at.info)
    assert calls == []
    assert any(c.value.startswith("Not transcribed: you typed") for c in at.caption)
    assert not any(c.value.startswith("Model transcript") for c in at.caption)


def test_each_component_is_mapped_in_its_own_method(monkeypatch, tiny_store_path, sentence_clip):
    """A run whose speech maps come in a second method, first by name, that its text maps lack:
    each component is still mapped, while the page waits and once the clip is placed (the page
    once placed every component in the first component's method, leaving the other mapless)."""
    import dataclasses

    import pandas as pd

    original, patched = live.reference, {}

    def with_a_speech_only_method(ref, run_id):
        if run_id not in patched:
            reference = original(ref, run_id)
            proj = reference.projections
            extra = proj[proj["component"] == "speech_encoder"].assign(method="aaa-speech-only")
            patched[run_id] = dataclasses.replace(
                reference, projections=pd.concat([proj, extra], ignore_index=True))
        return patched[run_id]

    monkeypatch.setattr(live, "reference", with_a_speech_only_method)
    live.map_methods.clear()
    try:
        at = _page(monkeypatch, tiny_store_path)
        _clean(at)
        maps = ["Your clip in the stored maps · speech_encoder",
                "Your clip in the stored maps · text_decoder"]
        assert _titles(at) == maps
        _text, data = sentence_clip
        at = _upload(at, data[:-2] + b"\x01\x00")  # a clip of its own: no cached placements
        _clean(at)
        assert [t for t in _titles(at) if t in maps] == maps
        assert live.map_methods(state.store_ref(), at.session_state["run_id"]) == {
            "speech_encoder": "aaa-speech-only", "text_decoder": "umap"}
    finally:
        live.map_methods.clear()  # later tests read the run as stored


@pytest.mark.parametrize(("data", "message"), [
    (b"", "the file is empty"),
    (b"hello, this is not audio at all " * 30, "not an audio file"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cannot be decoded: it is corrupt or truncated"),
    (_wav(np.zeros(0, dtype=np.float32)), "zero duration"),
    (_wav(np.zeros(16_000, dtype=np.float32)), "silent"),
])
def test_bad_uploads_get_a_message_not_a_traceback(monkeypatch, tiny_store_path, data, message):
    at = _upload(_page(monkeypatch, tiny_store_path), data, lang=None)
    _clean(at)
    assert len(at.error) == 1 and message in at.error[0].value
    assert "cannot be analysed" in at.error[0].value
    assert not at.get("plotly_chart")


def test_conversions_and_clipping_are_said(monkeypatch, tiny_store_path):
    t = np.arange(44_100) / 44_100
    loud = np.clip(2.0 * np.sin(2 * np.pi * 200 * t), -1, 1).astype(np.float32)
    at = _upload(_page(monkeypatch, tiny_store_path), _wav(np.stack([loud, loud], 1), 44_100))
    _clean(at)
    infos = " ".join(i.value for i in at.info)
    assert "mixed down to mono" in infos and "resampled from 44100 Hz" in infos
    assert any("clipped" in w.value for w in at.warning)


def test_too_large_upload_is_refused_before_reading(monkeypatch, tiny_store_path, sentence_clip):
    import core.audio

    monkeypatch.setattr(core.audio, "MAX_UPLOAD_BYTES", 1000)
    at = _upload(_page(monkeypatch, tiny_store_path), sentence_clip[1])
    _clean(at)
    assert "over the" in at.error[0].value and not at.get("plotly_chart")


def test_a_language_the_model_lacks(monkeypatch, tiny_store_path, sentence_clip):
    at = _upload(_page(monkeypatch, tiny_store_path), sentence_clip[1], lang="zul_Latn")
    _clean(at)
    assert "zul_Latn" in at.error[0].value and "Whisper" in at.error[0].value


def test_identifying_the_language(monkeypatch, tiny_store_path, sentence_clip):
    at = _upload(_page(monkeypatch, tiny_store_path), sentence_clip[1], lang="auto")
    _clean(at)
    # random weights hear some language: either one of the table (shown with its probability)
    # or one it lacks (then the user is asked to choose); never a traceback
    said = [s.value for s in at.success] + [e.value for e in at.error]
    assert len(said) == 1 and ("Identified language" in said[0] and "p = " in said[0]
                               or "choose one" in said[0])


def test_model_too_large_is_explained(monkeypatch, tiny_store_path, sentence_clip):
    from core.models import registry
    from core.models.base import ModelTooLargeError

    def too_large(name, **_kwargs):
        raise ModelTooLargeError(f"{name} has 8.40 B parameters: in float32 it needs about "
                                 "39.1 GiB on cpu, but only 7.5 GiB is free.")

    live._load.clear()
    monkeypatch.setattr(registry, "load_model", too_large)
    try:
        at = _upload(_page(monkeypatch, tiny_store_path), sentence_clip[1] + b"\0\0")
        _clean(at)
        assert "cannot be loaded on this machine" in at.error[0].value
        assert "39.1 GiB" in at.error[0].value
    finally:
        live._load.clear()


@pytest.fixture(scope="module")
def synthetic_store_path(tmp_path_factory) -> Path:
    return write_synthetic_store(tmp_path_factory.mktemp("recording") / "store.duckdb")


def test_text_only_run_says_so_and_offers_a_speech_run(monkeypatch, synthetic_store_path):
    at = _page(monkeypatch, synthetic_store_path)
    at.sidebar.selectbox(key="run_id").set_value(TEXT_RUN_ID).run()
    _clean(at)
    assert any("reads only text" in i.value and "cannot take a recording" in i.value
               for i in at.info)
    assert len(at.file_uploader) == 0, "a text-only run must not offer an upload"
    buttons = [b for b in at.button if b.key and b.key.startswith("switch_")]
    assert buttons
    buttons[-1].click().run()
    _clean(at)
    assert at.sidebar.selectbox(key="run_id").value != TEXT_RUN_ID
    assert len(at.file_uploader) == 1


def test_unloadable_model_is_explained(monkeypatch, synthetic_store_path, sentence_clip):
    at = _page(monkeypatch, synthetic_store_path)  # default run: synthetic-whisper, no weights
    at = _upload(at, sentence_clip[1])
    _clean(at)
    assert "synthetic-whisper" in at.error[0].value
    assert "cannot be loaded on this machine" in at.error[0].value


def test_every_inference_runs_on_the_models_one_thread_one_at_a_time():
    """Sessions' calls queue on the model's worker: one call at a time, always on the same
    long-lived thread (not the caller's: Streamlit's reruns each get a new thread), and a
    call's exception reaches its caller."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    loaded = live.LoadedModel(adapter=None, worker=ThreadPoolExecutor(max_workers=1))
    state_lock = threading.Lock()
    active, most, ran_on, callers = [0], [0], set(), set()

    def inference(i: int) -> int:
        with state_lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            ran_on.add(threading.get_ident())
        time.sleep(0.02)  # long enough for the callers' calls to overlap if they could
        with state_lock:
            active[0] -= 1
        return i * i

    results = {}

    def session(i: int) -> None:
        callers.add(threading.get_ident())
        results[i] = loaded.run(inference, i)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: i * i for i in range(6)}
    assert most[0] == 1 and len(ran_on) == 1 and not ran_on & callers

    def failing() -> None:
        raise ValueError("not this clip")

    with pytest.raises(ValueError, match="not this clip"):
        loaded.run(failing)
    assert loaded.run(inference, 3) == 9  # the worker survives a failed call
    loaded.worker.shutdown()


def test_the_pages_inference_calls_run_on_the_models_thread(monkeypatch):
    """live.hear and live.states (what the page calls) reach the adapter only on the loaded
    model's worker thread, never on the caller's."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from core import recording

    seen = []

    class Adapter:
        def supports_language(self, lang):
            return True

        def transcribe(self, waveforms, langs):
            seen.append(("transcribe", threading.current_thread().name))
            return ["a transcript"]

        def components(self):
            return []

    def clip_states(adapter, waveform, lang, text, components=None):
        seen.append(("states", threading.current_thread().name))
        return recording.ClipStates(lang=lang, text=text or "", pooled={}, frames={},
                                    frame_times_s={})

    loaded = live.LoadedModel(Adapter(), ThreadPoolExecutor(1, thread_name_prefix="model-fake"))
    monkeypatch.setattr(live, "_load", lambda name: loaded)
    monkeypatch.setattr(recording, "clip_states", clip_states)
    heard = live.hear("fake", "sha-thread-test", np.zeros(160, np.float32), "eng_Latn",
                      ("eng_Latn",))
    live.states("fake", "sha-thread-test", heard["speech"], "eng_Latn", heard["transcript"])
    assert [call for call, _ in seen] == ["states", "transcribe", "states"]
    assert all(name.startswith("model-fake") for _, name in seen), seen
    loaded.worker.shutdown()
