"""core.item_audio: a stored speech item heard again, and every way it can fail as bad input
(missing file, changed file, another synthesis, no espeak-ng), each a message, never a raise."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from core import audio
from core import item_audio as ia

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
TEXT = "The river was quiet this morning."


@pytest.fixture
def recording(tmp_path):
    """A quiet 1.5 s recording on disk, with its checksum and duration as a build stores them."""
    wave = (0.01 * np.sin(np.linspace(0, 600 * np.pi, 24_000))).astype(np.float32)
    path = tmp_path / "clip.wav"
    sf.write(path, wave, 16_000, subtype="FLOAT")
    return path, ia.file_sha256(path), audio.duration_s(audio.load_audio(path))


def test_voice_strings():
    assert ia.parse_voice("espeak-ng 1.51 de+f3") == ia.SynthesisVoice("1.51", "de+f3")
    for other in ("recording", None, "", "piper 1.0 de", "espeak-ng de"):
        assert ia.parse_voice(other) is None


def test_a_recording_plays_from_its_file_when_it_is_the_one_the_build_read(recording):
    path, sha, duration = recording
    heard = ia.item_audio(TEXT, "recording", duration, recording_path=str(path), file_sha256=sha)
    assert heard.verified and heard.waveform is not None
    assert heard.duration_s == pytest.approx(1.5)
    assert str(path) in heard.source


def test_recordings_that_cannot_be_played_say_why(recording, tmp_path):
    path, sha, duration = recording
    gone = ia.item_audio(TEXT, "recording", duration, recording_path=str(tmp_path / "gone.wav"))
    assert gone.waveform is None and "not there" in gone.message
    unknown = ia.item_audio(TEXT, "recording", duration)
    assert unknown.waveform is None and "does not record which file" in unknown.message
    changed = ia.item_audio(TEXT, "recording", duration, recording_path=str(path),
                            file_sha256="0" * 64)
    assert changed.waveform is None and "checksum differs" in changed.message


@needs_espeak
def test_a_synthesis_plays_only_when_it_matches_the_build(tmp_path):
    wave = audio.synthesize(TEXT, "en-us", cache_dir=tmp_path)
    voice = f"espeak-ng {audio.espeak_version()} en-us"
    same = ia.item_audio(TEXT, voice, audio.duration_s(wave), cache_dir=tmp_path,
                         waveform_sha256=ia.waveform_sha256(wave))
    assert same.verified and np.array_equal(same.waveform, wave)
    assert "checksum and duration" in same.message
    by_length = ia.item_audio(TEXT, voice, audio.duration_s(wave), cache_dir=tmp_path)
    assert by_length.verified and "same duration" in by_length.message
    longer = ia.item_audio(TEXT, voice, audio.duration_s(wave) + 0.5, cache_dir=tmp_path)
    assert longer.waveform is None and "not played" in longer.message
    other = ia.item_audio(TEXT, voice, audio.duration_s(wave), cache_dir=tmp_path,
                          waveform_sha256="f" * 64)
    assert other.waveform is None and "checksum" in other.message
    older = ia.item_audio(TEXT, "espeak-ng 0.9 en-us", audio.duration_s(wave) + 1, cache_dir=tmp_path)
    assert older.waveform is None and "the build used 0.9" in older.message


def test_without_espeak_the_message_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(ia.shutil, "which", lambda name: None)
    heard = ia.item_audio(TEXT, "espeak-ng 1.51 en-us", 2.0)
    assert heard.waveform is None and "apt-get install espeak-ng" in heard.message
    unknown = ia.item_audio(TEXT, "somebody", 2.0)
    assert unknown.waveform is None and "cannot be made again" in unknown.message


def test_quiet_waveforms_are_drawn_normalised(recording):
    path, _sha, _duration = recording
    wave = audio.load_audio(path)
    assert ia.display_gain(wave) == pytest.approx(0.9 / np.abs(wave).max())
    assert ia.display_gain(np.zeros(100)) == 1.0
    assert ia.display_gain(np.full(10, 1e-9)) == 100.0
