"""core.audio.decode_upload: every bad upload gets an AudioError with a clear message; good ones
are converted (and say so). The fuzz shows random and mutated bytes raise nothing else."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import audio
from core.audio import AudioError, decode_upload
from tests.conftest import SHARED_DIR

FLEURS = ("data", "fleurs_clips", "cuttledoc")
RATE = 16_000


def _encode(samples: np.ndarray, rate: int = RATE, fmt: str = "WAV",
            subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _tone(seconds: float = 1.0, rate: int = RATE, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_a_good_wav_passes_unchanged():
    wave = _tone(2.0)
    clip = decode_upload(_encode(wave))
    assert clip.format == "WAV" and clip.source_rate == RATE and clip.channels == 1
    assert clip.notes == [] and clip.warnings == []
    assert clip.duration_s == pytest.approx(2.0) and clip.analysed_s == pytest.approx(2.0)
    np.testing.assert_allclose(clip.waveform, wave, atol=1e-4)  # 16-bit PCM rounding
    assert len(clip.sha256) == 64


@pytest.mark.parametrize(("fmt", "subtype", "rate", "name"), [
    ("FLAC", None, RATE, "FLAC"), ("OGG", "OPUS", 48_000, "Ogg"), ("OGG", "VORBIS", RATE, "Ogg"),
    ("MP3", None, RATE, "MP3"),
])
def test_other_formats_decode(fmt, subtype, rate, name):
    clip = decode_upload(_encode(_tone(1.5, rate), rate, fmt, subtype))
    assert clip.format == name
    assert clip.duration_s == pytest.approx(1.5, abs=0.1)


def test_stereo_and_other_rate_are_converted_and_said():
    stereo = np.stack([_tone(1.0, 44_100), _tone(1.0, 44_100)], axis=1)
    clip = decode_upload(_encode(stereo, 44_100))
    assert clip.channels == 2 and clip.source_rate == 44_100
    assert clip.waveform.ndim == 1 and len(clip.waveform) == RATE
    assert any("mixed down to mono" in n for n in clip.notes)
    assert any("resampled from 44100 Hz to 16000 Hz" in n for n in clip.notes)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"This is a plain text file, not a recording.\n" * 20, "not an audio file"),
    (bytes(range(256)) * 8, "not an audio file"),
    (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00" + os.urandom(200), "no decoder for m4a|looks like MP4/M4A"),
])
def test_empty_and_not_audio(data, message):
    with pytest.raises(AudioError, match=message):
        decode_upload(data)


def test_truncated_and_corrupt_files():
    good = _encode(_tone(1.0))
    with pytest.raises(AudioError, match="looks like WAV but cannot be decoded"):
        decode_upload(good[:30])  # header cut before the data chunk
    flac = _encode(_tone(1.0), fmt="FLAC")
    with pytest.raises(AudioError, match="looks like FLAC"):
        decode_upload(flac[:4] + bytes(len(flac) - 4))


def test_zero_duration_and_too_short():
    with pytest.raises(AudioError, match="zero duration"):
        decode_upload(_encode(np.zeros(0, dtype=np.float32)))
    with pytest.raises(AudioError, match="too short"):
        decode_upload(_encode(_tone(0.05)))


def test_silence_is_refused_and_quiet_speech_is_not():
    with pytest.raises(AudioError, match="digital silence"):
        decode_upload(_encode(np.zeros(RATE, dtype=np.float32)))
    with pytest.raises(AudioError, match="silent .*-8\\d dBFS"):
        decode_upload(_encode(_tone(1.0, amplitude=1e-4), subtype="FLOAT"))
    quiet = decode_upload(_encode(_tone(1.0, amplitude=0.001), subtype="FLOAT"))
    assert len(quiet.warnings) == 1 and "very quiet (-63 dBFS" in quiet.warnings[0]
    assert decode_upload(_encode(_tone(1.0, amplitude=0.02))).warnings == []


def test_a_quiet_real_recording_is_analysed_with_a_warning(shared_data):
    # fleurs-en-004: real speech whose loudest 20 ms reach only about -54 dBFS
    clip = decode_upload(shared_data(*FLEURS, "fleurs-en-004.ogg").read_bytes())
    assert clip.warnings and "very quiet" in clip.warnings[0]


def test_nan_and_absurd_samples_are_refused():
    with pytest.raises(AudioError, match="NaN"):
        decode_upload(_encode(np.full(RATE, np.nan, dtype=np.float32), subtype="FLOAT"))
    with pytest.raises(AudioError, match="far outside"):
        decode_upload(_encode(_tone(1.0) * 1e30, subtype="FLOAT"))


def test_clipping_is_analysed_with_a_warning():
    clipped = np.clip(_tone(1.0) * 10, -1, 1)
    clip = decode_upload(_encode(clipped))
    assert clip.warnings and "clipped" in clip.warnings[0] and "%" in clip.warnings[0]
    assert decode_upload(_encode(_tone(1.0, amplitude=0.9))).warnings == []


def test_long_clips_are_cut_to_the_first_window():
    long = np.tile(_tone(1.0), 40)
    clip = decode_upload(_encode(long))
    assert clip.duration_s == pytest.approx(40.0)
    assert clip.analysed_s == pytest.approx(audio.MAX_ANALYSED_S)
    np.testing.assert_allclose(clip.waveform, long[: len(clip.waveform)], atol=1e-4)
    assert any("only its first 30 s are analysed" in n for n in clip.notes)


def test_large_files_are_refused_before_decoding(monkeypatch):
    def never(*_args, **_kwargs):
        raise AssertionError("decoded a file over the limit")

    monkeypatch.setattr(audio, "_decode_soundfile", never)
    with pytest.raises(AudioError, match="over the 25 MB limit"):
        decode_upload(b"RIFF" + bytes(audio.MAX_UPLOAD_BYTES))
    with pytest.raises(AudioError, match="over the 1 MB limit"):
        decode_upload(b"RIFF" + bytes(2**20), max_bytes=2**20)


def test_streamlit_refuses_the_same_size():
    config = (Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text()
    assert f"maxUploadSize = {audio.MAX_UPLOAD_MB}" in config


def test_uploads_leave_no_file_behind(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for data in (_encode(_tone(1.0)), b"\x00\x00\x00\x18ftypM4A " + bytes(64), b"junk" * 10):
        try:
            decode_upload(data)
        except AudioError:
            pass
    assert list(tmp_path.iterdir()) == []


def test_real_fleurs_ogg(shared_data):
    clip = decode_upload(shared_data(*FLEURS, "fleurs-en-000.ogg").read_bytes())
    assert clip.format == "Ogg" and clip.source_rate == RATE
    assert 3.0 < clip.duration_s < 30.0 and clip.warnings == []


# ------------------------------------------------------------------------------------ the fuzz

def _seeds() -> list[bytes]:
    seeds = [_encode(_tone(0.5)), _encode(_tone(0.5), fmt="FLAC"),
             _encode(_tone(0.5, 48_000), 48_000, "OGG", "OPUS"), _encode(_tone(0.5), fmt="MP3"),
             _encode(np.stack([_tone(0.5)] * 2, axis=1), subtype="FLOAT")]
    real = SHARED_DIR.joinpath(*FLEURS, "fleurs-de-000.ogg")  # a seed more when ../shared has it
    if real.is_file():
        seeds.append(real.read_bytes()[:40_000])
    return seeds


SEEDS = _seeds()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            data = data[:at]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "zero" and data:
            end = min(len(data), at + draw(st.integers(1, 64)))
            data[at:end] = bytes(end - at)
    return bytes(data)


def _decode_or_refuse(data: bytes) -> None:
    try:
        clip = decode_upload(data)
    except AudioError as error:
        assert str(error)  # a message, never an empty one
        return
    assert clip.waveform.dtype == np.float32 and clip.waveform.ndim == 1
    assert np.isfinite(clip.waveform).all() and clip.waveform.size > 0
    assert np.abs(clip.waveform).max() <= 16.5  # resampling may overshoot a little
    assert clip.analysed_s <= audio.MAX_ANALYSED_S + 1e-6


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes_raise_only_audio_errors(data):
    _decode_or_refuse(data)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzz_mutated_audio_raises_only_audio_errors(data):
    _decode_or_refuse(data)
