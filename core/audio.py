"""Speech in, as models want it: 16 kHz mono float32, from espeak-ng or from audio files.

Synthesis is deterministic for a given text, voice and espeak-ng version, so waveforms are cached on
disk under a hash of those three; re-running a build never calls espeak-ng twice for the same item.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

SAMPLING_RATE = 16_000
CACHE_ENV = "CROSSMODAL_LENS_CACHE"
ESPEAK = "espeak-ng"
_INSTALL_HINT = "install it: apt-get install espeak-ng"
#: bump when the cached representation changes, so old cache files are not reused
_CACHE_FORMAT = 1
_ESPEAK_TIMEOUT_S = 120


class EspeakError(RuntimeError):
    """espeak-ng is missing or failed to synthesise."""


def default_cache_dir() -> Path:
    """``$CROSSMODAL_LENS_CACHE/speech``, else ``~/.cache/crossmodal-lens/speech``."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root) if root else Path.home() / ".cache" / "crossmodal-lens"
    return base / "speech"


def _espeak_binary() -> str:
    binary = shutil.which(ESPEAK)
    if binary is None:
        raise EspeakError(f"{ESPEAK} was not found on PATH; {_INSTALL_HINT}")
    return binary


@lru_cache(maxsize=1)
def espeak_version() -> str:
    """Version of the installed espeak-ng, e.g. ``1.51``; part of the synthesis cache key."""
    result = subprocess.run(
        [_espeak_binary(), "--version"], capture_output=True, check=False, timeout=30
    )
    text = result.stdout.decode("utf-8", "replace")
    match = re.search(r"text-to-speech:\s*(\S+)", text)
    if result.returncode != 0 or match is None:
        raise EspeakError(f"could not read the espeak-ng version from {text!r}; {_INSTALL_HINT}")
    return match.group(1)


@lru_cache(maxsize=1)
def available_voices() -> frozenset[str]:
    """Names ``-v`` accepts: language codes and voice files listed by ``espeak-ng --voices``."""
    result = subprocess.run(
        [_espeak_binary(), "--voices"], capture_output=True, check=False, timeout=30
    )
    names: set[str] = set()
    for line in result.stdout.decode("utf-8", "replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        # Pty Language Age/Gender VoiceName File (other-language priority)...
        names.update({fields[1], fields[4]})
        names.update(re.findall(r"\(([^\s()]+) \d+\)", " ".join(fields[5:])))
    return frozenset(names)


def check_voice(voice: str) -> None:
    """Fail early on a voice espeak-ng does not have (with ``--stdin`` it would silently fall back
    to its default voice). A ``+variant`` suffix (e.g. ``en-us+f3``) is allowed."""
    base = voice.split("+", 1)[0]
    voices = available_voices()
    if base not in voices:
        raise EspeakError(
            f"espeak-ng has no voice {voice!r}; choose one of: "
            f"{', '.join(sorted(v for v in voices if '/' not in v))}"
        )


def cache_key(text: str, voice: str, version: str) -> str:
    """sha256 over everything that determines the synthesised waveform."""
    payload = json.dumps(
        {"text": text, "voice": voice, "espeak": version, "sr": SAMPLING_RATE,
         "format": _CACHE_FORMAT},
        ensure_ascii=False, sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npy"


def _save_atomically(path: Path, waveform: np.ndarray) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, waveform, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _run_espeak(text: str, voice: str) -> bytes:
    check_voice(voice)
    # Text goes through stdin (never the command line), so a leading "-" or shell characters in a
    # sentence cannot be read as options; -b 1 says the input is UTF-8.
    command = [_espeak_binary(), "-v", voice, "-b", "1", "--stdout", "--stdin"]
    result = subprocess.run(
        command, input=text.encode("utf-8"), capture_output=True, check=False,
        timeout=_ESPEAK_TIMEOUT_S,
    )
    stderr = result.stderr.decode("utf-8", "replace").strip()
    if result.returncode != 0 or not result.stdout:
        raise EspeakError(
            f"espeak-ng failed for voice {voice!r} (exit {result.returncode}): {stderr or 'no output'}"
            "; list voices with `espeak-ng --voices`"
        )
    return result.stdout


def _to_model_format(samples: np.ndarray, sampling_rate: int, target_rate: int) -> np.ndarray:
    """Mix down to mono, resample, and return contiguous float32."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if sampling_rate != target_rate:
        samples = librosa.resample(samples, orig_sr=sampling_rate, target_sr=target_rate)
    return np.ascontiguousarray(samples, dtype=np.float32)


def to_model_format(samples: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Decoded samples (mono, or frames x channels) at ``sampling_rate`` as the models' 16 kHz mono
    float32 (corpora that store samples rather than encoded files)."""
    return _to_model_format(np.asarray(samples), int(sampling_rate), SAMPLING_RATE)


def synthesize(text: str, voice: str, *, cache_dir: Path | str | None = None) -> np.ndarray:
    """Speak ``text`` with espeak-ng ``voice``; returns float32 mono at 16 kHz (cached on disk)."""
    if not text or not text.strip():
        raise ValueError("cannot synthesise empty text")
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = _cache_path(cache_root, cache_key(text, voice, espeak_version()))
    if path.is_file():
        return np.load(path, allow_pickle=False)
    wav_bytes = _run_espeak(text, voice)
    samples, rate = sf.read(io.BytesIO(wav_bytes), dtype="float32", always_2d=True)
    waveform = _to_model_format(samples, rate, SAMPLING_RATE)
    if waveform.size == 0 or not np.any(waveform):
        raise EspeakError(f"espeak-ng produced silence for voice {voice!r} and text {text[:60]!r}")
    _save_atomically(path, waveform)
    return waveform


def load_audio(path_or_bytes: str | Path | bytes, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Decode wav/flac/ogg/opus/mp3 (path or raw bytes) to float32 mono at ``sampling_rate``."""
    is_bytes = isinstance(path_or_bytes, bytes | bytearray)
    label = "<bytes>" if is_bytes else str(path_or_bytes)
    if not is_bytes and not Path(path_or_bytes).is_file():
        raise FileNotFoundError(f"audio file {label} does not exist")
    source = io.BytesIO(path_or_bytes) if is_bytes else path_or_bytes
    try:
        samples, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        # libsndfile cannot read some containers (e.g. m4a); librosa falls back to audioread.
        if is_bytes:
            source.seek(0)
        try:
            mono, rate = librosa.load(source, sr=None, mono=True)
        except Exception as error:  # report both decoders' reasons
            raise ValueError(
                f"could not decode audio {label}: soundfile: {sf_error}; librosa: {error}"
            ) from error
        samples = mono[:, None]
    return _to_model_format(samples, rate, sampling_rate)


def duration_s(waveform: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> float:
    """Length of a 1-D waveform in seconds."""
    return float(len(waveform)) / float(sampling_rate)


# --------------------------------------------------------------------------------------------------
# A user's upload: validated and decoded in memory, with a clear message for every bad case

#: uploads larger than this are refused before decoding (also ``server.maxUploadSize`` in
#: .streamlit/config.toml, in MB, so the browser refuses them first)
MAX_UPLOAD_MB = 25
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
#: Whisper's window: a longer clip is not refused, its first 30 s are analysed (and the user told)
MAX_ANALYSED_S = 30.0
#: shorter than this holds no speech (and at most 5 Whisper frames)
MIN_DURATION_S = 0.1
#: a clip whose loudest 20 ms stays below this is silence (real FLEURS speech peaks near -54 dBFS
#: in its loudest 20 ms; 16-bit dither sits near -90)
SILENCE_DBFS = -70.0
#: quieter than this (loudest 20 ms) is analysed with a warning
QUIET_DBFS = -45.0
#: share of samples at full scale above which the clip is reported as clipped (analysed anyway)
CLIPPED_FRACTION = 0.001
_CLIP_LEVEL = 0.999
_RATE_RANGE = (1_000, 384_000)
#: float files may exceed full scale a little (clipped later); beyond this they are garbage
_MAX_SAMPLE = 16.0

#: magic bytes -> format name, for messages and for the private temporary file's suffix
_MAGIC: tuple[tuple[int, bytes, str, str], ...] = (
    (0, b"RIFF", "WAV", ".wav"), (0, b"RF64", "WAV", ".wav"), (0, b"fLaC", "FLAC", ".flac"),
    (0, b"OggS", "Ogg", ".ogg"), (0, b"ID3", "MP3", ".mp3"), (0, b"FORM", "AIFF", ".aiff"),
    (4, b"ftyp", "MP4/M4A", ".m4a"), (0, b"\x1aE\xdf\xa3", "WebM/Matroska", ".webm"),
)


class AudioError(ValueError):
    """An upload that cannot be analysed; the message says why, in words a user understands."""


@dataclass
class Recording:
    """A validated upload, as the models want it (16 kHz mono float32), and what was done to it.

    ``notes`` say what was converted (sample rate, channels) or cut (only the first
    ``MAX_ANALYSED_S`` seconds are analysed); ``warnings`` what may distort the analysis (clipping).
    """

    waveform: np.ndarray
    sha256: str
    format: str
    source_rate: int
    channels: int
    duration_s: float              # of the whole file
    analysed_s: float              # of ``waveform``
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sampling_rate: int = SAMPLING_RATE


def sniff_format(data: bytes) -> tuple[str, str] | None:
    """(format name, file suffix) from the first bytes, or None when no audio format is recognised."""
    for offset, magic, name, suffix in _MAGIC:
        if data[offset:offset + len(magic)] == magic:
            return name, suffix
    if len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0:  # MPEG audio frame sync
        return "MP3", ".mp3"
    return None


def _decode_soundfile(data: bytes, max_s: float) -> tuple[np.ndarray, int, float]:
    """(samples (frames, channels), rate, full duration) of at most ``max_s`` seconds."""
    with sf.SoundFile(io.BytesIO(data)) as handle:
        rate, frames = int(handle.samplerate), int(handle.frames)
        _check_rate(rate)
        wanted = min(frames, int(math.ceil(max_s * rate))) if frames > 0 else -1
        samples = handle.read(frames=wanted, dtype="float32", always_2d=True)
    full = frames / rate if frames > 0 else samples.shape[0] / rate
    return samples, rate, full


def _decode_audioread(data: bytes, suffix: str, max_s: float) -> tuple[np.ndarray, int, float]:
    """Containers libsndfile cannot read (m4a/webm): audioread (ffmpeg/GStreamer) on a private
    temporary file whose name is ours (``upload<suffix>``), removed on return."""
    import audioread
    from audioread.rawread import (
        RawAudioFile,  # WAV/AIFF only: no help for these containers
    )

    if not [b for b in audioread.available_backends() if b is not RawAudioFile]:
        raise AudioError(f"this machine has no decoder for {suffix.lstrip('.')} files (ffmpeg or "
                         "GStreamer is needed); convert the file to WAV, FLAC, MP3 or Ogg/Opus and "
                         "upload it again")
    with tempfile.TemporaryDirectory(prefix="crossmodal-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        with audioread.audio_open(str(path)) as reader:
            rate, full = int(reader.samplerate), float(reader.duration)
        _check_rate(rate)
        mono, rate = librosa.load(str(path), sr=None, mono=True, duration=max_s)
    return mono[:, None].astype(np.float32), int(rate), full


def _check_rate(rate: int) -> None:
    if not _RATE_RANGE[0] <= rate <= _RATE_RANGE[1]:
        raise AudioError(f"the file says its sample rate is {rate} Hz, which is not a real audio "
                         f"rate ({_RATE_RANGE[0]}-{_RATE_RANGE[1]} Hz): the file is corrupt")


def _loudest_window_dbfs(wave: np.ndarray, window: int = 320) -> float:
    n = len(wave) // window
    if n == 0:
        power = float(np.mean(np.square(wave, dtype=np.float64)))
    else:
        blocks = wave[: n * window].astype(np.float64).reshape(n, window)
        power = float(np.max(np.mean(np.square(blocks), axis=1)))
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def decode_upload(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES,
                  max_analysed_s: float = MAX_ANALYSED_S) -> Recording:
    """Validate and decode an uploaded file (bytes, in memory) for analysis.

    Raises ``AudioError`` (and nothing else) for: an empty file, a file over ``max_bytes``
    (refused before decoding), bytes that are no audio format, a corrupt or truncated file, zero
    duration or under ``MIN_DURATION_S``, invalid samples (NaN/inf), an impossible sample rate, and
    silence (loudest 20 ms below ``SILENCE_DBFS``; below ``QUIET_DBFS`` is analysed with a
    warning). Clips longer than ``max_analysed_s`` are not
    refused: their first ``max_analysed_s`` seconds are analysed, and a note says so. Other sample
    rates and stereo are converted to 16 kHz mono (noted); clipping is reported in ``warnings``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AudioError(f"expected the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise AudioError("the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise AudioError(f"the file is {len(data) / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} "
                         "MB limit; upload a shorter clip (only the first 30 s are analysed anyway)")
    sniffed = sniff_format(data)
    name, suffix = sniffed if sniffed else ("unknown", ".bin")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                samples, rate, full_s = _decode_soundfile(data, max_analysed_s)
            except AudioError:
                raise
            except Exception as sf_error:
                if name not in ("MP4/M4A", "WebM/Matroska"):
                    raise sf_error
                samples, rate, full_s = _decode_audioread(data, suffix, max_analysed_s)
    except AudioError:
        raise
    except Exception as error:
        if sniffed is None:
            raise AudioError("this is not an audio file (no WAV, FLAC, MP3, Ogg/Opus or M4A data "
                             "found); upload a recording") from error
        raise AudioError(f"the file looks like {name} but cannot be decoded: it is corrupt or "
                         f"truncated ({' '.join(str(error).split())[:200]})") from error
    return _check_decoded(samples, rate, full_s, name, hashlib.sha256(data).hexdigest(),
                          max_analysed_s)


def _check_decoded(samples: np.ndarray, rate: int, full_s: float, name: str, sha: str,
                   max_analysed_s: float) -> Recording:
    if samples.size == 0 or samples.shape[0] == 0:
        raise AudioError(f"the {name} file holds no audio samples (zero duration)")
    if not np.isfinite(samples).all():
        raise AudioError(f"the {name} file holds invalid samples (NaN or infinity): it is corrupt")
    peak = float(np.max(np.abs(samples)))
    if peak > _MAX_SAMPLE:
        raise AudioError(f"the {name} file holds sample values up to {peak:.3g}, far outside the "
                         "[-1, 1] of audio: it is corrupt")
    channels = int(samples.shape[1])
    full_s = max(float(full_s), samples.shape[0] / rate)
    if full_s < MIN_DURATION_S:
        raise AudioError(f"the clip lasts {full_s * 1000:.0f} ms: too short to hold speech "
                         f"(at least {MIN_DURATION_S * 1000:.0f} ms)")
    notes, cautions = [], []
    clipped = float(np.mean(np.abs(samples) >= _CLIP_LEVEL))
    if clipped > CLIPPED_FRACTION:
        cautions.append(f"the clip is clipped: {clipped:.1%} of its samples sit at full scale, so the "
                        "model hears distortion; record again at a lower input level if you can")
    if channels > 1:
        notes.append(f"{channels} channels were mixed down to mono")
    if rate != SAMPLING_RATE:
        notes.append(f"resampled from {rate} Hz to {SAMPLING_RATE} Hz")
    if full_s > max_analysed_s + 1.0 / rate:
        notes.append(f"the clip lasts {full_s:.1f} s; only its first {max_analysed_s:.0f} s are "
                     "analysed (Whisper's window)")
    try:
        wave = _to_model_format(samples, rate, SAMPLING_RATE)
    except Exception as error:
        raise AudioError(f"the {name} file could not be converted to 16 kHz mono ({error})") from error
    wave = wave[: int(max_analysed_s * SAMPLING_RATE)]
    if wave.size == 0 or not np.isfinite(wave).all():
        raise AudioError(f"the {name} file holds no usable audio after conversion")
    loudest = _loudest_window_dbfs(wave)
    if loudest < SILENCE_DBFS:
        level = "digital silence" if loudest == -math.inf else f"{loudest:.0f} dBFS at its loudest"
        raise AudioError(f"the clip is silent ({level}; speech needs at least {SILENCE_DBFS:.0f} "
                         "dBFS): check the microphone")
    if loudest < QUIET_DBFS:
        cautions.append(f"the clip is very quiet ({loudest:.0f} dBFS in its loudest 20 ms); the "
                        "model may hear little of it")
    return Recording(waveform=np.ascontiguousarray(wave, dtype=np.float32), sha256=sha, format=name,
                     source_rate=int(rate), channels=channels, duration_s=full_s,
                     analysed_s=len(wave) / SAMPLING_RATE, notes=notes, warnings=cautions)
