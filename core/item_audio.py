"""Hear a stored speech item again: its recording, or its synthesis redone and checked.

A store keeps no audio. A recorded item plays from the file it was read from (where the store
recorded its path; its checksum, when recorded, must match). A synthesised item is synthesised
again with the voice the build recorded (``items.voice``: ``espeak-ng <version> <voice>``) and
played only if it is what the build heard: the same number of samples as the stored duration
(``duration_s`` is samples / 16 kHz) and, when the store recorded one, the same waveform checksum.
Every refusal is a result with a message, never an exception, so a page can show it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import audio, audio_refs

RECORDING = "recording"
ESPEAK = "espeak-ng"
INSTALL_ESPEAK = ("espeak-ng is not installed on the machine running the dashboard: install it "
                  "(Debian/Ubuntu `sudo apt-get install espeak-ng`, macOS `brew install "
                  "espeak-ng`; `scripts/setup.sh --system` does it for the tests) and reload.")


@dataclass(frozen=True)
class ItemAudio:
    """What can be played for one item: a waveform (None when it cannot be played) and why."""
    waveform: np.ndarray | None
    sampling_rate: int
    source: str            # who speaks: the file, or the synthesiser and voice
    verified: bool         # the audio is what the build heard (duration / checksum checked)
    message: str           # what was checked, or why nothing plays

    @property
    def duration_s(self) -> float:
        return 0.0 if self.waveform is None else audio.duration_s(self.waveform, self.sampling_rate)


@dataclass(frozen=True)
class SynthesisVoice:
    version: str
    voice: str


def parse_voice(voice: str | None) -> SynthesisVoice | None:
    """``espeak-ng 1.51 de+f3`` -> SynthesisVoice("1.51", "de+f3"); None for anything else
    (a recording, NULL, another synthesiser)."""
    parts = (voice or "").split()
    if len(parts) != 3 or parts[0] != ESPEAK:
        return None
    return SynthesisVoice(parts[1], parts[2])


def waveform_sha256(waveform: np.ndarray) -> str:
    """Checksum of a 16 kHz waveform as the build used it: its float32 little-endian bytes."""
    return hashlib.sha256(np.ascontiguousarray(waveform, dtype="<f4").tobytes()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Checksum of a recording: its file, or a clip inside an archive or table
    (``core.audio_refs``)."""
    if audio_refs.is_reference(str(path)):
        return audio_refs.clip_sha256(str(path))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_samples(duration_s: float, sampling_rate: int = audio.SAMPLING_RATE) -> int:
    """Samples of a stored duration (the build stored samples / rate)."""
    return int(round(float(duration_s) * sampling_rate))


def item_audio(text: str, voice: str | None, duration_s: float | None, *,
               recording_path: str | None = None, file_sha256: str | None = None,
               waveform_sha256: str | None = None,
               cache_dir: Path | str | None = None) -> ItemAudio:
    """The audio of one speech item (see the module docstring): ``recording_path`` and
    ``file_sha256`` (a recording's file), ``waveform_sha256`` (a synthesis's waveform) as the
    store's ``item_sources`` has them, None where it has none. Never raises for a missing file,
    a missing synthesiser or a mismatch: the result's ``message`` says what happened."""
    if voice == RECORDING:
        return _recorded(recording_path, file_sha256, duration_s)
    sha256 = waveform_sha256
    parsed = parse_voice(voice)
    if parsed is None:
        return _refused(voice or "unknown", f"the store does not say how this item's speech was "
                                            f"made (voice {voice!r}), so it cannot be made again.")
    return _synthesised(text, parsed, duration_s, sha256, cache_dir)


def _refused(source: str, message: str) -> ItemAudio:
    return ItemAudio(None, audio.SAMPLING_RATE, source, False, message)


def _recorded(path: str | None, sha256: str | None, duration_s: float | None) -> ItemAudio:
    if not path:
        return _refused(RECORDING, "the store does not record which file this recording came "
                                   "from (a store built before it did: rebuild it to record "
                                   "the files).")
    inside = audio_refs.is_reference(path)
    if not (audio_refs.container(path) if inside else Path(path)).is_file():
        return _refused(path, f"the recording is not there: `{path}` (moved, deleted, or on "
                              "another machine). Put the corpus back at that path to hear it.")
    try:
        if sha256 and file_sha256(path) != sha256:
            return _refused(path, f"`{path}` is not the file the build read (its checksum "
                                  "differs): it was changed since, so it is not played.")
        wave = audio_refs.decode_clip(path) if inside else audio.load_audio(path)
    except Exception as error:  # noqa: BLE001 - any decoding failure is shown, not raised
        return _refused(path, f"`{path}` cannot be decoded: {error}")
    checked = "checksum" if sha256 else "no checksum stored"
    if duration_s is not None and abs(audio.duration_s(wave) - float(duration_s)) > 0.01:
        return ItemAudio(wave, audio.SAMPLING_RATE, path, False,
                         f"Played from `{path}`, but it lasts {audio.duration_s(wave):.2f} s "
                         f"where the build stored {float(duration_s):.2f} s ({checked}).")
    return ItemAudio(wave, audio.SAMPLING_RATE, path, bool(sha256) or duration_s is not None,
                     f"Played from `{path}` ({checked}; duration as stored).")


def _synthesised(text: str, voice: SynthesisVoice, duration_s: float | None, sha256: str | None,
                 cache_dir: Path | str | None) -> ItemAudio:
    source = f"{ESPEAK} {voice.version} {voice.voice}"
    if shutil.which(audio.ESPEAK) is None:
        return _refused(source, INSTALL_ESPEAK)
    try:
        local = audio.espeak_version()
        wave = audio.synthesize(text, voice.voice, cache_dir=cache_dir)
    except (audio.EspeakError, ValueError) as error:
        return _refused(source, f"espeak-ng could not synthesise it: {error}")
    version_note = ("" if local == voice.version else
                    f" (this machine has espeak-ng {local}, the build used {voice.version})")
    if sha256 and waveform_sha256(wave) != sha256:
        return _refused(source, "synthesised again, but the waveform differs from the one the "
                                f"build used (checksum){version_note}: not played.")
    if duration_s is not None and len(wave) != expected_samples(duration_s):
        return _refused(source, f"synthesised again, but it lasts {audio.duration_s(wave):.3f} s "
                                f"where the build's lasted {float(duration_s):.3f} s"
                                f"{version_note}: not what the model heard, so not played.")
    if not sha256 and duration_s is None:
        return ItemAudio(wave, audio.SAMPLING_RATE, source, False,
                         f"Synthesised again with {source}; nothing stored to check it "
                         f"against{version_note}.")
    checked = "checksum and duration" if sha256 else "same duration to the sample"
    return ItemAudio(wave, audio.SAMPLING_RATE, source, True,
                     f"Synthesised again with {source}: {checked} as the build's"
                     f"{version_note}.")


def display_gain(waveform: np.ndarray, *, target_peak: float = 0.9, max_gain: float = 100.0) -> float:
    """Gain that brings a waveform's peak to ``target_peak`` for drawing (quiet recordings are
    drawn normalised); 1 for silence, never above ``max_gain``."""
    peak = float(np.max(np.abs(waveform))) if np.size(waveform) else 0.0
    if not np.isfinite(peak) or peak <= 0:
        return 1.0
    return float(min(max_gain, target_peak / peak))
