"""espeak-ng synthesis (real, a handful of sentences), its cache, and decoding/resampling."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core import audio
from core.audio import SAMPLING_RATE, duration_s, espeak_version, load_audio, synthesize

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def _rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))


def _dominant_frequency(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)])


@needs_espeak
def test_espeak_version_is_a_version_number():
    assert espeak_version()[0].isdigit()


@needs_espeak
@pytest.mark.parametrize(("voice", "text"), [
    ("en-us", "The weather is cold and rainy this morning."),
    ("de", "Ich trinke jeden Morgen zwei Tassen Kaffee."),
    ("cmn-latn-pinyin", "我每天早上喝两杯咖啡。"),
    ("hi", "मैं हर सुबह दो कप कॉफ़ी पीता हूँ।"),
])
def test_synthesis_is_speech_like(tmp_path, voice, text):
    wave = synthesize(text, voice, cache_dir=tmp_path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    # an eight-syllable-or-so sentence at espeak's default 175 wpm: roughly one to six seconds
    assert 1.0 < duration_s(wave) < 6.0
    assert _rms(wave) > 0.01
    assert np.abs(wave).max() <= 1.0


@needs_espeak
def test_longer_text_gives_longer_audio(tmp_path):
    short = synthesize("Good morning.", "en-us", cache_dir=tmp_path)
    long = synthesize("Good morning. The train to the airport leaves every fifteen minutes.",
                      "en-us", cache_dir=tmp_path)
    assert duration_s(long) > 2 * duration_s(short)


@needs_espeak
def test_cache_hit_does_not_call_espeak(tmp_path, monkeypatch):
    text, voice = "The lake freezes every winter.", "en-us"
    first = synthesize(text, voice, cache_dir=tmp_path)
    cached = list(tmp_path.rglob("*.npy"))
    assert len(cached) == 1
    assert not list(tmp_path.rglob("*.tmp")), "atomic write left a temporary file behind"

    def refuse(*args, **kwargs):
        raise AssertionError(f"espeak-ng was called despite a cache hit: {args}")

    monkeypatch.setattr(audio.subprocess, "run", refuse)
    second = synthesize(text, voice, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.float32


@needs_espeak
def test_cache_key_separates_voice_and_text(tmp_path):
    synthesize("Hello there.", "en-us", cache_dir=tmp_path)
    synthesize("Hello there.", "en-gb", cache_dir=tmp_path)
    synthesize("Hello again.", "en-us", cache_dir=tmp_path)
    assert len(list(tmp_path.rglob("*.npy"))) == 3
    assert audio.cache_key("a", "en-us", "1.51") != audio.cache_key("a", "en-us", "1.52")


def test_default_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMODAL_LENS_CACHE", str(tmp_path))
    assert audio.default_cache_dir() == tmp_path / "speech"
    monkeypatch.delenv("CROSSMODAL_LENS_CACHE")
    assert audio.default_cache_dir() == Path.home() / ".cache" / "crossmodal-lens" / "speech"


@needs_espeak
def test_text_starting_with_dash_is_spoken_not_parsed_as_option(tmp_path):
    wave = synthesize("-v xx --help; rm -rf /", "en-us", cache_dir=tmp_path)
    assert duration_s(wave) > 1.0


@needs_espeak
def test_unknown_voice_raises_clear_error(tmp_path):
    with pytest.raises(audio.EspeakError, match="no-such-voice"):
        synthesize("Hello.", "no-such-voice", cache_dir=tmp_path)


def test_missing_espeak_tells_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    audio.espeak_version.cache_clear()
    try:
        with pytest.raises(audio.EspeakError, match="apt-get install espeak-ng"):
            synthesize("Hello.", "en-us", cache_dir=tmp_path)
    finally:
        audio.espeak_version.cache_clear()


def test_empty_text_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        synthesize("   ", "en-us", cache_dir=tmp_path)


def test_stereo_44k_wav_becomes_16k_mono(tmp_path):
    rate, seconds, freq = 44_100, 1.5, 440.0
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    stereo = np.stack([tone, tone], axis=1)  # identical channels: the mix keeps the tone
    path = tmp_path / "tone.wav"
    sf.write(path, stereo, rate)

    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - seconds * SAMPLING_RATE) <= 2
    assert abs(_dominant_frequency(wave, SAMPLING_RATE) - freq) < 2.0
    assert 0.3 < _rms(wave) < 0.4  # 0.5 / sqrt(2) survives resampling

    from_bytes = load_audio(path.read_bytes())
    np.testing.assert_allclose(from_bytes, wave)


def test_load_audio_resamples_to_requested_rate(tmp_path):
    path = tmp_path / "one_second.flac"
    sf.write(path, np.zeros(22_050, dtype=np.float32), 22_050)
    assert len(load_audio(path, sampling_rate=8_000)) == 8_000


def test_load_audio_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "absent.wav")


def test_real_fleurs_ogg_clip(shared_data):
    fleurs_ogg = shared_data("data", "fleurs_clips", "cuttledoc", "fleurs-de-000.ogg")
    info = sf.info(fleurs_ogg)
    wave = load_audio(fleurs_ogg)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert duration_s(wave) == pytest.approx(info.frames / info.samplerate, abs=0.01)
    assert _rms(wave) > 0.005  # a person speaking, not silence


def test_duration_s():
    assert duration_s(np.zeros(24_000, dtype=np.float32)) == 1.5
    assert duration_s(np.zeros(8_000, dtype=np.float32), 8_000) == 1.0


@needs_espeak
def test_espeak_output_decodes_with_soundfile():
    # espeak-ng streams a WAV header with placeholder sizes; make sure it still decodes.
    raw = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", "Hello."], capture_output=True,
                         check=True).stdout
    samples, rate = sf.read(io.BytesIO(raw))
    assert rate == 22_050 and len(samples) > rate // 4
