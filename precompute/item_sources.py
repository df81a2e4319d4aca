"""``python -m precompute item-sources``: record where the speech of a store built before
``item_sources`` existed came from, so the dashboard can check a replay against a checksum.

For each synthesised speech item without a row: synthesise it again with the voice the build
recorded (``items.voice``) and, only if the waveform has exactly the stored number of samples,
record its checksum (``core.item_audio.waveform_sha256``). Items whose synthesis differs (another
espeak-ng version) are counted and left without a row (the dashboard then checks the duration,
and says it differs). Recordings cannot be backfilled: the store never recorded their files.

Same crash safety as ``metrics``: under the store's lock, on a copy, published atomically; the
copy is migrated to the current schema on the way. Idempotent: a second run finds nothing to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from core import audio, item_audio
from core.store import Store, copy_store_file
from precompute.config import BuildError
from precompute.publish import staged_store
from precompute.staging import store_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourcesBackfill:
    """What a backfill did: rows added, and the items it could not record (with why)."""
    added: int
    already: int
    differing: int          # synthesis redone with another length: left without a row
    recordings: int         # recordings: their files were never recorded
    unknown_voice: int      # a voice that names no synthesiser


def missing_sources(store: Store) -> pd.DataFrame:
    """Speech items (every voice) without an ``item_sources`` row."""
    items = store.items("speech", all_voices=True)
    known = set(store.item_sources()["item_id"])
    return items[~items["item_id"].isin(known)].reset_index(drop=True)


def synthesised_sources(items: pd.DataFrame, *, speech_cache: Path | None = None,
                        progress: bool = True) -> tuple[pd.DataFrame, dict[str, int]]:
    """Checksums of the synthesised items whose synthesis redone matches the stored length, and
    counts of those left out (``differing``, ``recordings``, ``unknown_voice``)."""
    rows, counts = [], {"differing": 0, "recordings": 0, "unknown_voice": 0}
    for item in tqdm(list(items.itertuples()), desc="synthesising again", disable=not progress):
        if item.voice == item_audio.RECORDING:
            counts["recordings"] += 1
            continue
        voice = item_audio.parse_voice(item.voice)
        if voice is None:
            counts["unknown_voice"] += 1
            continue
        wave = audio.synthesize(item.text, voice.voice, cache_dir=speech_cache)
        if item.duration_s is None or len(wave) != item_audio.expected_samples(item.duration_s):
            counts["differing"] += 1
            continue
        rows.append({"item_id": int(item.item_id), "path": None, "file_sha256": None,
                     "waveform_sha256": item_audio.waveform_sha256(wave)})
    frame = pd.DataFrame(rows, columns=["item_id", "path", "file_sha256", "waveform_sha256"])
    return frame, counts


def backfill_item_sources(store_path: str | Path, *, speech_cache: Path | None = None,
                          progress: bool = True) -> SourcesBackfill:
    """Add the missing synthesised items' checksums to ``store_path`` (see the module docstring);
    refuses before copying anything when espeak-ng is missing."""
    store_path = Path(store_path)
    if not store_path.is_file():
        raise BuildError(f"no store at {store_path}")
    try:
        local = audio.espeak_version()
    except audio.EspeakError as error:
        raise BuildError(f"cannot synthesise again: {error}") from error
    with store_lock(store_path), staged_store(store_path) as tmp:
        copy_store_file(store_path, tmp)
        with Store.open(tmp, read_only=False) as store:  # migrates the copy
            already = len(store.item_sources())
            missing = missing_sources(store)
            versions = {v.version for v in map(item_audio.parse_voice, missing["voice"]) if v}
            if versions - {local}:
                log.warning("the store's speech was made by espeak-ng %s, this machine has %s: "
                            "items whose synthesis differs are left without a checksum",
                            ", ".join(sorted(versions)), local)
            frame, counts = synthesised_sources(missing, speech_cache=speech_cache,
                                                progress=progress)
            store.set_item_sources(frame)
    log.info("published %s (%d item sources added)", store_path, len(frame))
    return SourcesBackfill(added=len(frame), already=already, **counts)
