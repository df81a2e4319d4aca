"""A synthetic store whose speech can be heard: the Items page's AppTest and browser tests.

``write_items_store`` writes the synthetic store with Yoruba speech marked as recordings (one of
them pointing at a file that is gone) and, where espeak-ng is installed, English sentences 0 and 1
given their true espeak-ng lengths and waveform checksums, so those two play and every other
synthetic item (made-up durations) is refused as not what the build heard.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from core import audio, item_audio
from core.store import Store
from synthetic_store import write_synthetic_store

#: (lang, sentence ids) whose synthesis matches the store, when espeak-ng is installed
PLAYABLE = ("eng_Latn", (0, 1))
GONE = "gone.wav"


def write_items_store(path: Path, cache_dir: Path) -> Path:
    path = write_synthetic_store(path, recorded=("yor_Latn",))
    with Store.open(path, read_only=False) as store:
        speech = store.items("speech")
        yoruba = speech[speech["lang"] == "yor_Latn"].iloc[0]
        store.set_item_sources(pd.DataFrame({
            "item_id": [int(yoruba.item_id)], "path": [str(path.parent / GONE)],
            "file_sha256": ["0" * 64], "waveform_sha256": ["0" * 64]}))
        if shutil.which(audio.ESPEAK):
            lang, sentences = PLAYABLE
            chosen = speech[(speech["lang"] == lang) & speech["sentence_id"].isin(sentences)]
            waves = {int(r.item_id): audio.synthesize(r.text, "en", cache_dir=cache_dir)
                     for r in chosen.itertuples()}
            store.update_items(pd.DataFrame({
                "item_id": list(waves), "voice": f"espeak-ng {audio.espeak_version()} en",
                "duration_s": [audio.duration_s(w) for w in waves.values()]}))
            store.set_item_sources(pd.DataFrame({
                "item_id": list(waves), "path": None, "file_sha256": None,
                "waveform_sha256": [item_audio.waveform_sha256(w) for w in waves.values()]}))
    return path
