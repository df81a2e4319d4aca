"""What a corpus read: its files with checksums and row counts (recorded in every run's config, so a
result can be traced to the exact data), and the check that every clip it names can be read.

A loader lists each file it read as a :class:`SourceFile`; ``unreadable_clips`` opens every
recording once (header only for a file, the bytes for a clip in an archive or table) before a build
writes anything, so a bad clip is reported up front, naming its file and row.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One file (or folder of clips) a corpus was read from."""

    path: str
    role: str               # "text", "tsv", "audio archive", "audio folder", "table", ...
    sha256: str             # of the file; of the listed clips in order for an audio folder
    size: int               # bytes
    rows: int | None = None  # lines, TSV rows or table rows in the file; clips for a folder

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def source_file(path: Path | str, role: str, rows: int | None = None) -> SourceFile:
    """A file's record: its path, sha256 and size."""
    path = Path(path)
    return SourceFile(str(path), role, sha256_file(path), path.stat().st_size, rows)


def folder_of_clips(folder: Path | str, clips: Iterable[Path | str]) -> SourceFile:
    """One record for the clips a corpus uses from a folder: a sha256 over their names and
    contents in order, their total size and count (a line per clip would swamp the run config)."""
    digest = hashlib.sha256()
    size = count = 0
    for clip in clips:
        clip = Path(clip)
        digest.update(clip.name.encode("utf-8") + b"\0")
        digest.update(bytes.fromhex(sha256_file(clip)))
        size += clip.stat().st_size
        count += 1
    return SourceFile(str(folder), "audio folder", digest.hexdigest(), size, count)


def unreadable_clips(corpus, *, progress: bool = True) -> list[tuple[str, int, str]]:
    """(lang, position, why) for every recording of ``corpus`` that cannot be read: a file
    libsndfile cannot open, or a referenced clip whose bytes are missing or do not decode."""
    from core import audio_refs

    problems: list[tuple[str, int, str]] = []
    todo = [(lang, position, path) for lang in corpus.langs
            for position, path in enumerate(corpus.audio_paths[lang]) if path is not None]
    for lang, position, path in tqdm(todo, desc="checking recordings", unit="clip",
                                     disable=not progress or len(todo) < 50, leave=False):
        why = _clip_problem(path, audio_refs)
        if why is not None:
            problems.append((lang, position, why))
    return problems


def _clip_problem(path: str, audio_refs) -> str | None:
    import soundfile

    if not audio_refs.is_reference(path):
        try:
            soundfile.info(path)
        except Exception as exc:  # noqa: BLE001 - libsndfile's errors have no common base
            return f"cannot read audio {path}: {_first_line(exc)}"
        return None
    try:
        value = audio_refs.read_clip(path)
    except audio_refs.ClipError as exc:
        return f"cannot read audio: {exc}"
    if not isinstance(value, bytes):
        return None  # decoded samples, checked as they were read
    try:
        soundfile.info(io.BytesIO(value))
        return None
    except Exception:  # noqa: BLE001 - not a libsndfile format: try the full decoders
        pass
    try:
        audio_refs.decode_clip(path)
    except audio_refs.ClipError as exc:
        return f"cannot read audio: {exc}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
