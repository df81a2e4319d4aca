"""FLEURS (Conneau et al. 2022) on disk, in either layout, as a ``core.corpus.ParallelCorpus``.

- **as the hub stores it** (a snapshot of the dataset repository ``google/fleurs``):
  ``[data/]<locale>/<split>.tsv`` and ``[data/]<locale>/audio/<split>.tar.gz``; clips are streamed
  out of the archive when the build needs them (``core.audio_refs``), nothing is extracted;
- **extracted**: ``<locale>/<split>.tsv`` and ``<locale>/audio/<split>/*.wav``.

Each language may come in either layout. A TSV row is ``id, file name, raw transcription,
normalised transcription, characters, number of samples, gender``; several rows (speakers) may
share an id: the first listed is used. The hub names the validation split ``dev``.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core import audio_refs, languages
from core.corpus import ParallelCorpus, checked_count, display_order
from core.corpus_files import SourceFile, folder_of_clips, source_file

FLEURS_COLUMNS = 7
#: what other tools call FLEURS' splits -> the file names the repository uses
SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "eval": "dev"}
MISSING_AUDIO = ("refuse", "skip")
ABSENT_REASON = "audio file listed in the TSV is absent"


@dataclass(frozen=True)
class FleursRow:
    text: str
    file_name: str
    line: int   # 1-based line of the TSV


def split_file_name(split: str) -> str:
    """The repository's name for ``split`` (``validation`` -> ``dev``)."""
    return SPLIT_ALIASES.get(split, split)


def fleurs_rows(tsv: Path) -> dict[int, FleursRow]:
    """FLEURS id -> its first row (raw transcription, audio file name, line number)."""
    try:
        return _read_rows(tsv)
    except csv.Error as exc:  # NUL bytes, fields over the csv module's size limit
        raise ValueError(f"{tsv} is not a readable FLEURS TSV: {exc}") from None


def _read_rows(tsv: Path) -> dict[int, FleursRow]:
    rows: dict[int, FleursRow] = {}
    with tsv.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row:
                continue
            if len(row) != FLEURS_COLUMNS:
                raise ValueError(
                    f"{tsv}:{number} has {len(row)} columns; FLEURS rows have {FLEURS_COLUMNS} "
                    "(id, file name, raw transcription, normalised transcription, characters, "
                    "number of samples, gender)"
                )
            try:
                sentence_id = int(row[0])
            except ValueError:
                raise ValueError(f"{tsv}:{number}: id {row[0]!r} is not an integer") from None
            rows.setdefault(sentence_id, FleursRow(row[2].strip(), row[1].strip(), number))
    return rows


def fleurs_root(root: Path, split: str) -> Path:
    """The folder holding the locale folders: ``root`` or a snapshot's ``root/data``."""
    data = root / "data"
    if data.is_dir() and any((p / f"{split}.tsv").is_file() for p in data.iterdir()):
        return data
    return root


def fleurs_locales(root: Path, split: str) -> dict[str, str]:
    """FLORES code -> FLEURS locale folder, for the folders holding ``<split>.tsv``."""
    found: dict[str, str] = {}
    for folder in sorted(p for p in root.iterdir() if (p / f"{split}.tsv").is_file()):
        try:
            found[languages.from_fleurs_code(folder.name)] = folder.name
        except KeyError:
            warnings.warn(f"skipping {folder}: not a FLEURS locale name", stacklevel=3)
    return found


def to_flores(lang: str) -> str:
    """Accept FLEURS locale names as well as FLORES codes."""
    return languages.from_fleurs_code(lang) if lang.lower() in languages.FLEURS_TO_FLORES else lang


class _LocaleAudio:
    """Where one locale's clips are: an extracted folder or the split's archive."""

    def __init__(self, folder: Path, split: str) -> None:
        self.extracted = folder / "audio" / split
        self.archive = folder / "audio" / f"{split}.tar.gz"
        self.members: dict[str, str] | None = None
        if not self.extracted.is_dir():
            if not self.archive.is_file():
                raise FileNotFoundError(
                    f"no FLEURS audio for {folder.name}: neither {self.archive} (as the hub "
                    f"stores it) nor the folder {self.extracted} (extracted)")
            self.members = audio_refs.tar_members(self.archive)

    def clip(self, file_name: str) -> str | None:
        """The clip's path or reference, None when absent."""
        if self.members is None:
            path = self.extracted / file_name
            return str(path) if path.is_file() else None
        member = self.members.get(file_name)
        return None if member is None else audio_refs.tar_ref(self.archive, member)

    def where(self) -> Path:
        return self.extracted if self.members is None else self.archive

    def record(self, paths: Sequence[str]) -> SourceFile:
        if self.members is None:
            return folder_of_clips(self.extracted, paths)
        return source_file(self.archive, "audio archive", rows=len(self.members))


def load_fleurs(root: Path | str, split: str = "test", langs: Sequence[str] | None = None,
                n_sentences: int | None = None, missing_audio: str = "refuse") -> ParallelCorpus:
    """FLEURS on disk (either layout, see the module docstring).

    Keeps the FLEURS ids present in every requested language (sorted), one clip per id per language
    (the first listed); texts are the raw transcriptions. A TSV row whose clip is absent is an
    error naming the TSV and its line, or with ``missing_audio="skip"`` its id is left out of every
    language (counted in ``dropped``).
    """
    if missing_audio not in MISSING_AUDIO:
        raise ValueError(f"missing_audio must be one of {MISSING_AUDIO}, got {missing_audio!r}")
    given = Path(root)
    if not given.is_dir():
        raise FileNotFoundError(f"FLEURS root {given} is not a directory")
    split = split_file_name(split)
    root = fleurs_root(given, split)
    locales = fleurs_locales(root, split)
    if not locales:
        raise FileNotFoundError(f"no <locale>/{split}.tsv under {given} (nor under {given}/data)")
    chosen = display_order(list(locales)) if langs is None else [to_flores(lang) for lang in langs]
    missing = [lang for lang in chosen if lang not in locales]
    if missing:
        raise FileNotFoundError(
            f"no FLEURS {split} split for {', '.join(missing)} under {root} "
            f"(available: {', '.join(sorted(locales))})"
        )
    tsvs = {lang: root / locales[lang] / f"{split}.tsv" for lang in chosen}
    rows = {lang: fleurs_rows(tsvs[lang]) for lang in chosen}
    common = sorted(set.intersection(*(set(r) for r in rows.values())))
    if not common:
        raise ValueError(f"no FLEURS id is shared by all of {', '.join(chosen)} in split {split!r} "
                         f"({', '.join(f'{lang}: {len(rows[lang])} ids' for lang in chosen)})")
    found = {lang: _LocaleAudio(root / locales[lang], split) for lang in chosen}
    clips = {lang: {i: found[lang].clip(rows[lang][i].file_name) for i in common}
             for lang in chosen}
    absent = sorted({i for lang in chosen for i in common if clips[lang][i] is None})
    if absent and missing_audio == "refuse":
        lang = next(lang for lang in chosen if clips[lang][absent[0]] is None)
        row = rows[lang][absent[0]]
        count = sum(clips[lg][i] is None for lg in chosen for i in common)
        raise FileNotFoundError(
            f"{tsvs[lang]}:{row.line} names {row.file_name}, which {found[lang].where()} does not "
            f"hold ({count} listed clips are missing); "
            + ("extract the audio archive into it" if found[lang].members is None
               else "download the archive again")
            + ", or pass --bad-audio skip to leave those sentences out")
    kept = [i for i in common if i not in set(absent)]
    if not kept:
        raise ValueError(f"none of the {len(common)} FLEURS ids shared by {', '.join(chosen)} has "
                         "its audio in every language")
    ids = kept[: checked_count(n_sentences, len(kept), f"fleurs-{split}")]
    audio_paths: dict[str, list[str | None]] = {lang: [clips[lang][i] for i in ids]
                                                for lang in chosen}
    files = []
    for lang in chosen:
        files.append(source_file(tsvs[lang], "tsv", rows=len(rows[lang])))
        files.append(found[lang].record([p for p in audio_paths[lang] if p is not None]))
    layouts = sorted({"hub archives" if found[lang].members is not None else "extracted"
                      for lang in chosen})
    return ParallelCorpus(
        name=f"fleurs-{split}",
        langs=chosen,
        sentence_ids=ids,
        texts={lang: [rows[lang][i].text for i in ids] for lang in chosen},
        audio_paths=audio_paths,
        source=f"FLEURS (Conneau et al. 2022), split {split}, from {root} ({', '.join(layouts)})",
        files=files,
        dropped={ABSENT_REASON: absent} if absent else {},
    )
