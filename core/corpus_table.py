"""Parquet / Arrow speech corpora as a :class:`~core.corpus.ParallelCorpus`.

A corpus is one file, a folder of ``*.parquet`` / ``*.arrow`` files, or a ``datasets``
``save_to_disk`` folder (``state.json`` beside its ``data-*.arrow`` files; a saved ``DatasetDict``
has one such folder per split). It is read "long": a row per (sentence, language) with

- ``id``: the sentence id shared by its translations (integers; other ids are numbered in sorted
  order over the whole corpus),
- ``lang``: the language, as a FLORES-200 code, a FLEURS locale, an ISO 639-1 code or a label the
  config's ``langs`` table maps; ``@path`` takes it from the first folder of the file's path (under
  the corpus root) that names a language (FLEURS converted to Parquet: ``en_us/test/0000.parquet``),
- ``text``: the sentence,
- ``audio`` (optional; without it speech is synthesised): encoded bytes (a binary column or the
  ``{"bytes", "path"}`` struct of ``datasets``' Audio), a path (relative to the file), or decoded
  samples with ``rate``, a column or a number.

Columns are named by ``TableColumns`` (``--columns id=sentence_id,text=transcription``, or a small
JSON / TOML config). Only the id, language and text columns are read here; clips stay in their files
and are streamed one row group at a time when the build needs them (``core.audio_refs``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from core import audio_refs, languages
from core.corpus import ParallelCorpus, checked_count, display_order
from core.corpus_files import source_file

LANG_FROM_PATH = "@path"
TABLE_SUFFIXES = (".parquet", ".arrow")
NULL_AUDIO_REASON = "audio cell is empty"
#: what other tools call a split -> the names ``datasets`` saves them under, tried in turn
SPLIT_NAMES = {"dev": ("dev", "validation"), "validation": ("validation", "dev")}


def split_names(split: str | None) -> tuple[str | None, ...]:
    """The names a split may have on disk, the asked one first (``dev`` is ``validation`` too)."""
    return SPLIT_NAMES.get(split or "", (split,))


@dataclass(frozen=True)
class TableColumns:
    """Which column holds what (``audio=None``: a text-only corpus)."""

    id: str = "id"
    lang: str = "lang"
    text: str = "text"
    audio: str | None = "audio"
    rate: str | None = None   # a column name, or the sampling rate of every row ("16000")

    def to_json(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class TableSpec:
    """How to read a table corpus: its columns and its own language labels -> FLORES-200."""

    columns: TableColumns = TableColumns()
    langs: tuple[tuple[str, str], ...] = ()

    @property
    def lang_map(self) -> dict[str, str]:
        return dict(self.langs)


def parse_columns(text: str, base: TableColumns | None = None) -> TableColumns:
    """``id=sentence_id,text=transcription,audio=`` (empty: none) over ``base`` (the defaults)."""
    base = base or TableColumns()
    names = {f.name for f in fields(TableColumns)}
    changes: dict[str, str | None] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in names:
            raise ValueError(f"--columns: {part!r} is not <key>=<column> with a key from "
                             f"{', '.join(sorted(names))}")
        changes[key] = value.strip() or None
    for key in ("id", "lang", "text"):
        if key in changes and changes[key] is None:
            raise ValueError(f"--columns: {key}= needs a column name")
    return replace(base, **changes)


def read_spec(path: Path | str, columns: str | None = None) -> TableSpec:
    """A table corpus config: JSON or TOML with an optional ``columns`` table (keys as
    ``TableColumns``) and ``langs`` table (corpus label -> FLORES-200 code); ``columns`` (the
    ``--columns`` flag) overrides its columns."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError and JSONDecodeError too
        raise ValueError(f"corpus config {path} is not readable JSON/TOML: {exc}") from None
    unknown = set(data) - {"columns", "langs"}
    if unknown or not isinstance(data.get("columns", {}), dict) \
            or not isinstance(data.get("langs", {}), dict):
        raise ValueError(f"corpus config {path}: expected tables 'columns' and 'langs' only "
                         f"(got {', '.join(sorted(data))})")
    given = data.get("columns", {})
    spec_columns = parse_columns(",".join(f"{k}={v or ''}" for k, v in given.items()))
    if columns:
        spec_columns = parse_columns(columns, spec_columns)
    langs = tuple(sorted((str(k), str(v)) for k, v in data.get("langs", {}).items()))
    return TableSpec(spec_columns, langs)


# ---------------------------------------------------------------------- files
def table_files(path: Path, split: str | None = None) -> tuple[Path, list[Path]]:
    """(root, files) of a table corpus: the file itself; a ``save_to_disk`` folder's data files (a
    ``DatasetDict``'s ``split`` folder); else every Parquet / Arrow file under the folder, only
    those named for ``split`` (a ``<split>`` folder or a ``<split>-*`` / ``<split>.*`` file) when
    any are."""
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise FileNotFoundError(f"table corpus {path} is neither a file nor a folder")
    if (path / "dataset_dict.json").is_file():
        splits = _saved_splits(path)
        for name in split_names(split):
            if name in splits:
                return table_files(path / name, None)
        raise FileNotFoundError(f"{path} is a saved DatasetDict without split {split!r} "
                                f"(splits: {', '.join(splits)}); pick one with --split")
    if (path / "state.json").is_file():
        return path, _saved_files(path)
    found = sorted(p for p in path.rglob("*") if p.suffix in TABLE_SUFFIXES and p.is_file())
    if not found:
        raise FileNotFoundError(f"no *.parquet or *.arrow files under {path}")
    if split:
        named = [p for p in found if split in p.relative_to(path).parts[:-1]
                 or p.name.startswith((f"{split}-", f"{split}."))]
        found = named or found
    return path, found


def _saved_splits(path: Path) -> list[str]:
    try:
        return [str(s) for s in json.loads((path / "dataset_dict.json").read_text())["splits"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}/dataset_dict.json is not a saved DatasetDict: {exc}") from None


def _saved_files(path: Path) -> list[Path]:
    try:
        state = json.loads((path / "state.json").read_text())
        files = [path / entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}/state.json is not a datasets save_to_disk state: {exc}") from None
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise FileNotFoundError(f"{path}/state.json lists {', '.join(absent)}, which is missing")
    return files


def _read_columns(file: Path, wanted: list[str]) -> tuple[dict[str, list[Any]], list[str]]:
    """The ``wanted`` columns of a table file as lists (audio never read here), and every column
    name it has."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if file.suffix == ".parquet" or _starts_with(file, b"PAR1"):
            names = pq.ParquetFile(file).schema_arrow.names
            present = [c for c in wanted if c in names]
            table = pq.read_table(file, columns=present)
        else:
            with pa.memory_map(str(file)) as source:
                try:
                    table = pa.ipc.open_file(source).read_all()
                except pa.ArrowInvalid:
                    source.seek(0)
                    table = pa.ipc.open_stream(source).read_all()
                names = table.schema.names
                table = table.select([c for c in wanted if c in names])
                return {c: table.column(c).to_pylist() for c in table.schema.names}, names
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{file} is not a readable Parquet or Arrow file: {exc}") from None
    return {c: table.column(c).to_pylist() for c in table.schema.names}, names


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(magic)) == magic


# ---------------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class _Row:
    file: Path
    row: int
    text: str


def load_table_corpus(path: Path | str, spec: TableSpec = TableSpec(), split: str | None = None,
                      langs: Sequence[str] | None = None, n_sentences: int | None = None,
                      ) -> ParallelCorpus:
    """A Parquet / Arrow corpus (see the module docstring): the sentence ids present in every
    chosen language (sorted), the first row of each (id, language)."""
    path = Path(path)
    root, files = table_files(path, split)
    columns = spec.columns
    wanted = [c for c in (columns.id, columns.lang, columns.text) if c != LANG_FROM_PATH]
    by_lang: dict[str, dict[Any, _Row]] = {}
    rows_per_file: dict[Path, int] = {}
    for file in files:
        data, names = _read_columns(file, wanted)
        needed = [*wanted, *(c for c in (columns.audio,) if c)]
        if columns.rate and not columns.rate.isdigit():
            needed.append(columns.rate)
        absent = [c for c in needed if c not in names]
        if absent:
            raise ValueError(f"{file} has no column {', '.join(absent)} (it has "
                             f"{', '.join(names)}); name the columns with --columns "
                             "id=...,lang=...,text=...,audio=... or a corpus config")
        n = len(data[columns.id])
        rows_per_file[file] = n
        file_lang = _lang_from_path(file, root, spec) if columns.lang == LANG_FROM_PATH else None
        for row in range(n):
            label = file_lang if file_lang is not None else data[columns.lang][row]
            sid, text = data[columns.id][row], data[columns.text][row]
            if label is None or sid is None:
                raise ValueError(f"{file} row {row}: the {'language' if label is None else 'id'} "
                                 "cell is empty")
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{file} row {row}: text {text!r} is not a non-empty string "
                                 f"(column {columns.text})")
            label = str(label)
            by_lang.setdefault(label, {}).setdefault(sid, _Row(file, row, text.strip()))
    if not by_lang:
        raise ValueError(f"table corpus {path} has no rows")
    unknown = languages.unknown_corpus_codes(by_lang, spec.lang_map)
    if unknown:
        raise ValueError(
            f"table corpus {path}: unknown language labels {', '.join(unknown)}; use FLORES-200 "
            "codes (eng_Latn), FLEURS locales (en_us) or ISO 639-1 codes (en), or map each in the "
            "corpus config's langs table (e.g. {\"langs\": {\"English\": \"eng_Latn\"}})")
    flores: dict[str, dict[Any, _Row]] = {}
    for label, rows in by_lang.items():
        code = languages.from_corpus_code(label, spec.lang_map)
        if code in flores:
            raise ValueError(f"table corpus {path}: two labels name {code} ({label} and another); "
                             "keep one per language")
        flores[code] = rows
    chosen = (display_order(list(flores)) if langs is None
              else [_choice(lang, spec) for lang in langs])
    missing = [lang for lang in chosen if lang not in flores]
    if missing:
        raise FileNotFoundError(f"table corpus {path} has no rows in {', '.join(missing)} "
                                f"(it has {', '.join(display_order(list(flores)))})")
    number = _sentence_numbers({sid for rows in flores.values() for sid in rows})
    common = sorted(set.intersection(*(set(flores[lang]) for lang in chosen)), key=number.get)
    if not common:
        counts = ", ".join(f"{lang}: {len(flores[lang])} ids" for lang in chosen)
        raise ValueError(f"table corpus {path}: no sentence id is shared by all of "
                         f"{', '.join(chosen)} ({counts}); check that column {columns.id} holds "
                         "the same id for a sentence's translations")
    ids = common[: checked_count(n_sentences, len(common), path.name)]
    audio_paths: dict[str, list[str | None]] = {}
    for lang in chosen:
        audio_paths[lang] = [
            None if columns.audio is None else audio_refs.table_ref(
                flores[lang][sid].file, flores[lang][sid].row, columns.audio, columns.rate)
            for sid in ids]
    return ParallelCorpus(
        name=path.stem if path.is_file() else path.name,
        langs=chosen,
        sentence_ids=[number[sid] for sid in ids],
        texts={lang: [flores[lang][sid].text for sid in ids] for lang in chosen},
        audio_paths=audio_paths,
        source=f"table corpus {path} ({len(files)} files{f', split {split}' if split else ''}; "
               f"columns {json.dumps(columns.to_json())})",
        files=[source_file(f, "table", rows=rows_per_file[f]) for f in files],
    )


def _choice(lang: str, spec: TableSpec) -> str:
    try:
        return languages.from_corpus_code(lang, spec.lang_map)
    except KeyError:
        return lang


def _lang_from_path(file: Path, root: Path, spec: TableSpec) -> str:
    for part in file.relative_to(root).parts[:-1]:
        if not languages.unknown_corpus_codes([part], spec.lang_map):
            return part
    raise ValueError(f"{file}: lang={LANG_FROM_PATH} but no folder of its path under {root} "
                     "names a language (e.g. en_us/test/0000.parquet)")


def _sentence_numbers(ids: set[Any]) -> dict[Any, int]:
    """Each id as the integer a store keeps: itself when every id is an integer (or integral
    text), else its position in the sorted ids of the whole corpus (stable for the corpus)."""
    as_int: dict[Any, int] = {}
    for sid in ids:
        if isinstance(sid, bool):
            break
        try:
            value = int(sid)
        except (TypeError, ValueError):
            break
        if str(value) != str(sid).strip() and not isinstance(sid, int):
            break
        as_int[sid] = value
    else:
        if len(set(as_int.values())) == len(as_int):
            return as_int
    return {sid: i for i, sid in enumerate(sorted(ids, key=str))}
