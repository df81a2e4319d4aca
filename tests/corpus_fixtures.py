"""Tiny speech corpora in every layout the build reads, all holding the same clips: FLEURS
extracted, FLEURS as the hub stores it (TSV + ``audio/<split>.tar.gz``), a Parquet corpus with audio
bytes, and a ``datasets`` ``save_to_disk`` folder (written with pyarrow in the layout ``datasets``
writes: Arrow stream files listed in ``state.json``), so a test can check that each layout gives the
same corpus and the same metric rows.

Clips are espeak-ng speech of the sentences (``core.audio.synthesize``, cached under the test's
folder); where espeak-ng is missing, a tone per sentence stands in (no test depends on which)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

#: sentences written for these tests; FLEURS locale -> (id, text) rows
SENTENCES = {
    "en_us": [(11, "The bridge opens at noon."), (12, "Rain fell on the old roof."),
              (14, "A small dog crossed the road.")],
    "de_de": [(11, "Die Brücke öffnet um zwölf."), (12, "Regen fiel auf das alte Dach."),
              (14, "Ein kleiner Hund lief über die Straße.")],
}
VOICES = {"en_us": "en", "de_de": "de"}
FLORES = {"en_us": "eng_Latn", "de_de": "deu_Latn"}
SPLIT = "test"


def clip_bytes(locale: str, sentence_id: int, text: str, cache: Path) -> bytes:
    """A 16 kHz 16-bit WAV of ``text`` (espeak-ng; a tone where espeak-ng is missing)."""
    from core import audio

    if shutil.which("espeak-ng"):
        wave = audio.synthesize(text, VOICES[locale], cache_dir=cache)
    else:
        wave = 0.1 * np.sin(np.linspace(0, 40 * sentence_id, 4000 + 400 * sentence_id))
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(wave, dtype=np.float32), 16_000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def all_clips(cache: Path) -> dict[tuple[str, int], bytes]:
    return {(locale, sid): clip_bytes(locale, sid, text, cache)
            for locale, rows in SENTENCES.items() for sid, text in rows}


def _tsv_line(sid: int, file_name: str, text: str, n_samples: int) -> str:
    return "\t".join([str(sid), file_name, text, text.lower(), "x|y", str(n_samples), "FEMALE"])


def _tsv(locale: str, clips: dict[tuple[str, int], bytes]) -> str:
    return "".join(_tsv_line(sid, f"{sid}.wav", text, len(clips[(locale, sid)]) // 2) + "\n"
                   for sid, text in SENTENCES[locale])


def write_fleurs_extracted(root: Path, clips: dict[tuple[str, int], bytes]) -> Path:
    """``<locale>/test.tsv`` + ``<locale>/audio/test/<id>.wav``."""
    for locale in SENTENCES:
        folder = root / locale / "audio" / SPLIT
        folder.mkdir(parents=True)
        for sid, _ in SENTENCES[locale]:
            (folder / f"{sid}.wav").write_bytes(clips[(locale, sid)])
        (root / locale / f"{SPLIT}.tsv").write_text(_tsv(locale, clips), encoding="utf-8")
    return root


def write_tar_gz(archive: Path, members: dict[str, bytes]) -> None:
    """A gzip-compressed tar of ``members`` (name -> bytes), in the given order."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_fleurs_snapshot(root: Path, clips: dict[tuple[str, int], bytes]) -> Path:
    """A snapshot of the hub repository's layout: ``data/<locale>/test.tsv`` and
    ``data/<locale>/audio/test.tar.gz`` whose members sit in a ``test/`` folder."""
    for locale in SENTENCES:
        folder = root / "data" / locale
        write_tar_gz(folder / "audio" / f"{SPLIT}.tar.gz",
                     {f"{SPLIT}/{sid}.wav": clips[(locale, sid)] for sid, _ in SENTENCES[locale]})
        (folder / f"{SPLIT}.tsv").write_text(_tsv(locale, clips), encoding="utf-8")
    return root


def hub_files() -> list[str]:
    """The repository paths the build should fetch for these locales' test split."""
    return [path for locale in SENTENCES for path in
            (f"data/{locale}/{SPLIT}.tsv", f"data/{locale}/audio/{SPLIT}.tar.gz")]


def table_rows(clips: dict[tuple[str, int], bytes]) -> list[dict]:
    """One row per (sentence, language), languages as FLEURS locales, audio as datasets' struct."""
    return [{"sentence": sid, "locale": locale, "transcription": text,
             "audio": {"bytes": clips[(locale, sid)], "path": f"{sid}.wav"}}
            for locale, rows in SENTENCES.items() for sid, text in rows]


TABLE_COLUMNS = "id=sentence,lang=locale,text=transcription,audio=audio"


def write_parquet(path: Path, rows: list[dict], row_group_size: int = 2) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def write_saved_dataset(folder: Path, rows: list[dict], batch_rows: int = 2) -> Path:
    """A ``Dataset.save_to_disk`` folder: an Arrow stream file in record batches, ``state.json``
    listing it, ``dataset_info.json``."""
    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    name = "data-00000-of-00001.arrow"
    with pa.OSFile(str(folder / name), "wb") as sink:
        writer = pa.ipc.new_stream(sink, table.schema)
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write_batch(batch)
        writer.close()
    (folder / "state.json").write_text(json.dumps({
        "_data_files": [{"filename": name}], "_fingerprint": "0", "_format_columns": None,
        "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
        "_split": SPLIT}), encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps({"features": {}}), encoding="utf-8")
    return folder


def write_saved_dataset_dict(folder: Path, rows: list[dict]) -> Path:
    """A ``DatasetDict.save_to_disk`` folder with one split, ``test``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": [SPLIT]}), encoding="utf-8")
    write_saved_dataset(folder / SPLIT, rows)
    return folder
