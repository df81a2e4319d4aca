"""Corpora from the Hugging Face hub, fetched into the usual hub cache (``snapshot_download`` with
``allow_patterns``): the snapshot folder is returned and read as it is.

- FLEURS' layout (``--corpus hf:google/fleurs``): only the chosen languages' TSV and audio archive
  of one split (``core.corpus_fleurs`` reads them).
- A Parquet / Arrow dataset (``--corpus hf:<owner>/<name> --corpus-format table``): the files of
  one split, in the layouts ``datasets`` and the hub write (``core.corpus_table`` reads them).

Offline (``HF_HUB_OFFLINE=1``, or the hub unreachable) the files must already be in the cache; if
they are not, the error says at once which files to download and where to put them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from core import languages
from core.corpus_table import TABLE_SUFFIXES, split_names

HF_PREFIX = "hf:"
FLEURS_REPO = "google/fleurs"


def is_hub_corpus(corpus: str) -> bool:
    """Whether ``--corpus`` names a hub repository (``hf:<owner>/<name>[@<revision>]``)."""
    return corpus.startswith(HF_PREFIX)


def parse_hub_corpus(corpus: str) -> tuple[str, str | None]:
    """``hf:google/fleurs@abc123`` -> ("google/fleurs", "abc123")."""
    repo, _, revision = corpus[len(HF_PREFIX):].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"--corpus {corpus!r}: expected hf:<owner>/<name>[@<revision>], "
                         f"e.g. hf:{FLEURS_REPO}")
    return repo, revision or None


def fleurs_locale(lang: str) -> str:
    """The FLEURS locale folder of a FLORES-200 code or locale (``deu_Latn`` -> ``de_de``)."""
    if lang.lower() in languages.FLEURS_TO_FLORES:
        return lang.lower()
    code = languages.canonical_code(lang)
    for locale, flores in languages.FLEURS_TO_FLORES.items():
        if flores == code:
            return locale
    raise KeyError(f"FLEURS has no {lang!r} (its languages: "
                   f"{', '.join(sorted(languages.FLEURS_TO_FLORES.values()))})")


def fleurs_files(langs: Sequence[str], split: str) -> list[str]:
    """The repository paths one split of ``langs`` needs: TSV and audio archive per locale."""
    files = []
    for lang in langs:
        locale = fleurs_locale(lang)
        files += [f"data/{locale}/{split}.tsv", f"data/{locale}/audio/{split}.tar.gz"]
    return files


def hub_offline() -> bool:
    """Whether the user turned the hub off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_download(repo_id: str, *, revision: str | None, allow_patterns: list[str],
                 local_files_only: bool, cache_dir: Path | None) -> str:
    """``huggingface_hub.snapshot_download`` of a dataset repository (tests replace this)."""
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, repo_type="dataset", revision=revision,
                             allow_patterns=allow_patterns, local_files_only=local_files_only,
                             cache_dir=cache_dir)


def fetch_fleurs(corpus: str, langs: Sequence[str] | None, split: str,
                 cache_dir: Path | None = None) -> Path:
    """The snapshot folder holding ``langs``' ``split`` of a FLEURS-layout hub repository, fetched
    into the hub cache when missing (nothing else of the repository is downloaded)."""
    parse_hub_corpus(corpus)  # a malformed name fails before anything else
    if not langs:
        raise ValueError(f"--corpus {corpus}: name the languages to fetch with --langs (e.g. "
                         "eng_Latn,deu_Latn); FLEURS has 102 and one split of all of them is "
                         "tens of GB")
    files = fleurs_files(langs, split)
    folder = _snapshot(corpus, files, cache_dir,
                       advice=lambda why: _fetch_advice(corpus, files, cache_dir, why))
    absent = [f for f in files if not (folder / f).is_file()]
    if absent:
        raise FileNotFoundError(_fetch_advice(corpus, absent, cache_dir,
                                              f"the snapshot {folder} lacks them"))
    return folder


def table_patterns(split: str, folders: Sequence[str] = ()) -> list[str]:
    """``allow_patterns`` for one split's Parquet / Arrow files of a dataset repository, in the
    layouts ``datasets`` and the hub write: ``[<dir>/]<split>-00000-of-00001.parquet``
    (``push_to_hub``), ``[<config>/]<split>/0000.parquet`` (the hub's Parquet conversion), and
    ``[<dir>/]<split>.parquet``; ``dev`` is also fetched as ``validation`` and the other way
    round. With ``folders`` (a table whose language is its folder: one per language's label),
    only files under a folder of those names. (A ``*`` matches ``/`` too, so ``*/`` is any depth
    of folders.)"""
    own = []
    for name in split_names(split):
        for suffix in TABLE_SUFFIXES:
            own += [f"{name}-*{suffix}", f"{name}/*{suffix}", f"{name}{suffix}"]
    if folders:
        return [f"{outer}{folder}/{inner}{pattern}" for folder in folders for pattern in own
                for outer in ("", "*/") for inner in ("", "*/")]
    return [f"{outer}{pattern}" for pattern in own for outer in ("", "*/")]


def fetch_table(corpus: str, split: str, cache_dir: Path | None = None, *,
                folders: Sequence[str] = ()) -> Path:
    """The snapshot folder holding ``split``'s Parquet / Arrow files of a hub dataset repository
    (``table_patterns``), fetched into the hub cache when missing: every language of the split,
    unless the table's language is its folder and ``folders`` names the chosen languages'
    (e.g. FLEURS' Parquet conversion, ``en_us/test/0000.parquet``)."""
    patterns = table_patterns(split, folders)
    folder = _snapshot(corpus, patterns, cache_dir,
                       advice=lambda why: _table_advice(corpus, split, patterns, cache_dir, why))
    if not any(p.suffix in TABLE_SUFFIXES for p in folder.rglob("*") if p.is_file()):
        raise FileNotFoundError(_table_advice(
            corpus, split, patterns, cache_dir,
            f"the snapshot {folder} holds no Parquet or Arrow file of split {split!r}"
            + (f" under a folder named {', '.join(folders)}" if folders else "")))
    return folder


def _snapshot(corpus: str, patterns: list[str], cache_dir: Path | None,
              advice: Callable[[str], str]) -> Path:
    """``hub_download`` of ``patterns`` (from the cache only when offline); any failure becomes a
    FileNotFoundError saying why and what to do (``advice``)."""
    repo, revision = parse_hub_corpus(corpus)
    offline = hub_offline()
    try:
        return Path(hub_download(repo, revision=revision, allow_patterns=patterns,
                                 local_files_only=offline, cache_dir=cache_dir))
    except ImportError:
        raise FileNotFoundError(advice("huggingface_hub is not installed (pip install "
                                       "huggingface_hub)")) from None
    except Exception as exc:  # noqa: BLE001 - the hub client's errors (HTTP, offline, cache) vary
        why = ("HF_HUB_OFFLINE is set and the files are not in the hub cache" if offline else
               f"the hub could not be reached or refused ({type(exc).__name__}: "
               f"{str(exc).splitlines()[0] if str(exc) else 'no message'})")
        raise FileNotFoundError(advice(why)) from None


def _table_advice(corpus: str, split: str, patterns: Sequence[str], cache_dir: Path | None,
                  why: str) -> str:
    repo, revision = parse_hub_corpus(corpus)
    where = cache_dir or os.environ.get("HF_HUB_CACHE") or "~/.cache/huggingface/hub"
    include = " ".join(f"--include '{p}'" for p in patterns[:2])
    return (f"cannot get split {split!r} of {repo} as Parquet/Arrow files: {why}. On a machine "
            f"with network run `hf download {repo} --repo-type dataset {include}"
            f"{' --revision ' + revision if revision else ''}` (it fills the hub cache, {where}; "
            "copy that folder here), or download the files any way and pass their folder with "
            "--corpus <folder> --corpus-format table")


def _fetch_advice(corpus: str, files: Sequence[str], cache_dir: Path | None, why: str) -> str:
    repo, revision = parse_hub_corpus(corpus)
    from_hub = " ".join(files)
    where = cache_dir or os.environ.get("HF_HUB_CACHE") or "~/.cache/huggingface/hub"
    return (f"cannot get {len(files)} FLEURS files of {repo}: {why}. On a machine with network run "
            f"`hf download {repo} {from_hub} --repo-type dataset"
            f"{' --revision ' + revision if revision else ''}` (it fills the hub cache, {where}; "
            "copy that folder here), or put "
            f"{', '.join(files[:2])}{' ...' if len(files) > 2 else ''} in a folder laid out the "
            "same way and pass it with --corpus <folder> --corpus-format fleurs")
