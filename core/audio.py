"""Speech in, as models want it: 16 kHz mono float32, from espeak-ng or from audio files.

Synthesis is deterministic for a given text, voice and espeak-ng version, so waveforms are cached on
disk under a hash of those three; re-running a build never calls espeak-ng twice for the same item.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
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
