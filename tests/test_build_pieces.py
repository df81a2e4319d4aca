"""A store built in pieces (issue 10): runs added to an existing store, resume after a crash or
SIGKILL, bounded memory in extraction, the store lock, shards + merge, Ray, and bad input."""
# ruff: noqa: F811 - fake_setup is precompute_helpers' fixture, imported to be requested here

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.models import registry
from core.store import SCHEMA_VERSION, Store
from precompute import extract, measure, publish, staging
from precompute.cli import main
from precompute.extract import component_states
from precompute_helpers import (
    FAKE_CORPUS,
    FAKE_LANGS,
    SAMPLES_PER_POSITION,
    FakeAdapter,
    fake_argv,
    fake_setup,  # noqa: F401 - a fixture
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TABLES = ["runs", "languages", "items", "run_items", "run_languages", "components", "layers",
          "activations", "metrics", "metric_variants", "projections", "item_sources"]
#: columns that say when, not what
WHEN = {"runs": ["created_at"]}


def store_rows(path: Path, *, config_without=("command_line", "out")) -> dict[str, pd.DataFrame]:
    """Every table's rows, sorted, without timestamps; runs.config parsed, minus ``config_without``."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {}
        for table in TABLES:
            frame = con.execute(f"SELECT * FROM {table}").fetchdf().drop(columns=WHEN.get(table, []))
            for blob in ("vector", "resamples"):  # BLOB columns: bytes compare and sort
                if blob in frame:
                    frame[blob] = [bytes(v) if v is not None else b"" for v in frame[blob]]
            if table == "runs":
                frame["config"] = [json.dumps({k: v for k, v in json.loads(c).items()
                                               if k not in config_without}, sort_keys=True)
                                   for c in frame.config]
            tables[table] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
        return tables
    finally:
        con.close()


def assert_same_rows(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for table in TABLES:
        pd.testing.assert_frame_equal(a[table], b[table], check_exact=True, obj=table)


def _two_models(monkeypatch) -> None:
    monkeypatch.setattr(registry, "SHORT_NAMES",
                        (*registry.SHORT_NAMES, registry.ShortName("fake-model-2", "fake")))


# ---------------------------------------------------------------------- many runs, one store
def test_runs_are_added_beside_the_old_ones_and_a_finished_job_is_a_no_op(fake_setup, tmp_path,
                                                                          monkeypatch, capsys):
    _two_models(monkeypatch)
    out = tmp_path / "lens.duckdb"
    first = fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca")
    assert main(first) == 0
    before = store_rows(out)
    (old_run,) = before["runs"].run_id

    # another model: a second run; the first run's rows are untouched
    assert main([*first, "--model", "fake-model-2"]) == 0
    assert "already complete" in capsys.readouterr().out  # fake-model's run was done
    both = store_rows(out)
    assert sorted(both["runs"].model) == ["fake-model", "fake-model-2"]
    for table in ("activations", "metrics", "run_items", "components", "layers"):
        pd.testing.assert_frame_equal(
            both[table][both[table].run_id == old_run].reset_index(drop=True), before[table],
            check_exact=True, obj=table)
    pd.testing.assert_frame_equal(both["items"], before["items"])  # shared, not duplicated

    # a changed configuration is a new run, never mixed into the old one
    assert main([*first, "--n-permutations", "5"]) == 0
    runs = store_rows(out)["runs"]
    assert len(runs) == 3 and len(set(runs.run_id)) == 3
    assert sorted(json.loads(c)["n_permutations"] for c in runs.config) == [4, 4, 5]

    # the same command again: nothing to do, and it says so; the file is not even rewritten
    stat = out.stat()
    assert main(first) == 0
    assert f"run {old_run} is already complete in {out}: nothing to do" in capsys.readouterr().out
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert not staging.parts_root(out).exists()


def test_a_text_only_model_makes_no_speech_and_a_speech_model_adds_it_later(tmp_path,
                                                                            monkeypatch):
    """A model without a speech component reads no speech, so none is synthesised (or, for a
    corpus of recordings, decoded) for its run; a speech model built into the same store later
    adds the speech items beside the text run's, which stays as it was."""
    argv = ["build", "--langs", "eng_Latn,deu_Latn", "--n-sentences", "3", "--out",
            str(tmp_path / "lens.duckdb"), "--device", "cpu", "--n-permutations", "2",
            "--n-bootstrap", "2", "--no-umap", "--metrics", "svcca", "--speech-cache",
            str(tmp_path / "speech")]
    real = extract.load_waveform

    def no_speech(*_args, **_kwargs):
        raise AssertionError("speech was made for a text-only run")

    monkeypatch.setattr(extract, "load_waveform", no_speech)
    assert main([*argv, "--model", "e5-tiny-random"]) == 0
    before = store_rows(tmp_path / "lens.duckdb")
    assert set(before["items"].modality) == {"text"} and len(before["items"]) == 6
    monkeypatch.setattr(extract, "load_waveform", real)
    assert main([*argv, "--model", "whisper-tiny-random", "--max-transcript-tokens", "4"]) == 0
    after = store_rows(tmp_path / "lens.duckdb")
    speech = after["items"][after["items"].modality == "speech"]
    assert len(speech) == 6 * after["items"].voice_rank.nunique() and speech.duration_s.gt(0).all()
    text = after["items"][after["items"].modality == "text"].reset_index(drop=True)
    assert text["voice"].isna().all() and before["items"]["voice"].isna().all()
    pd.testing.assert_frame_equal(  # the text items the e5 run reads are the same rows
        text.drop(columns="voice"), before["items"].drop(columns="voice"))
    (e5_run,) = before["runs"].run_id
    for table in ("metrics", "activations", "components"):
        pd.testing.assert_frame_equal(
            after[table][after[table].run_id == e5_run].reset_index(drop=True), before[table],
            check_exact=True, obj=table)


def test_more_languages_add_their_items_only(fake_setup, tmp_path):
    out = tmp_path / "lens.duckdb"
    argv = ["build", "--corpus", str(fake_setup), "--model", "fake-model", "--out", str(out),
            "--no-umap", "--metrics", "svcca", "--n-permutations", "2", "--n-bootstrap", "2"]
    assert main([*argv, "--langs", "eng_Latn,deu_Latn"]) == 0
    with Store.open(out) as store:
        old_items = store.items()
    assert main([*argv, "--langs", ",".join(FAKE_LANGS)]) == 0
    with Store.open(out) as store:
        items = store.items()
        assert len(store.runs()) == 2 and len(items) == 2 * 3 * 6
        kept = items[items.item_id.isin(old_items.item_id)].reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, old_items)
        assert set(items[~items.item_id.isin(old_items.item_id)].lang) == {"swh_Latn"}
        assert store.languages().lang.tolist() == sorted(FAKE_LANGS)


def test_a_second_corpus_with_other_sentences_under_the_same_ids_is_refused(fake_setup, tmp_path,
                                                                             capsys):
    out = tmp_path / "lens.duckdb"
    assert main(fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca")) == 0
    before = out.read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    for lang, texts in FAKE_CORPUS.items():
        (other / f"{lang}.dev").write_text("\n".join(reversed(texts)) + "\n", encoding="utf-8")
    assert main(fake_argv(other, out, "--no-umap", "--metrics", "svcca")) == 1
    err = capsys.readouterr().err
    assert "already holds other text" in err and "another --out" in err
    assert out.read_bytes() == before and not list(tmp_path.glob("lens.duckdb.*"))


# ---------------------------------------------------------------------- resume
@pytest.mark.slow
def test_a_crash_in_any_stage_resumes_to_the_uninterrupted_result(fake_setup, tmp_path,
                                                                  monkeypatch):
    reference = tmp_path / "reference.duckdb"
    argv = ["--metrics", "svcca,paired_cosine"]
    assert main(fake_argv(fake_setup, reference, *argv)) == 0

    out = tmp_path / "resumed.duckdb"
    extracted = []
    real_extract = FakeAdapter.extract

    def counting_extract(self, component, inputs, langs, **kw):
        extracted.append((component, langs[0]))
        return real_extract(self, component, inputs, langs, **kw)

    monkeypatch.setattr(FakeAdapter, "extract", counting_extract)
    # crash in the middle of each stage in turn: extraction (second language), a metric group,
    # a map, the publish
    crashes = [(extract, "run_language", 2), (measure, "compute_metrics", 3),
               (measure, "compute_projections", 2), (publish, "add_run_from_parts", 1)]
    for module, name, nth in crashes:
        real = getattr(module, name)
        calls = []

        def crashing(*args, _real=real, _calls=calls, _nth=nth, _name=name, **kwargs):
            _calls.append(1)
            if len(_calls) == _nth:
                raise RuntimeError(f"simulated crash in {_name}")
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, crashing)
        with pytest.raises(RuntimeError, match="simulated crash"):
            main(fake_argv(fake_setup, out, *argv))
        monkeypatch.setattr(module, name, real)
        assert not out.exists()
    n_before = len(extracted)
    assert main(fake_argv(fake_setup, out, *argv)) == 0
    assert len(extracted) == n_before  # every part was already there: no model pass repeated
    assert_same_rows(store_rows(out), store_rows(reference))
    assert not staging.parts_root(out).exists()


def _tiny_argv(out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "precompute", "build", "--langs", "eng_Latn,deu_Latn",
            "--n-sentences", "3", "--model", "whisper-tiny-random", "--out", str(out),
            "--device", "cpu", "--n-permutations", "2", "--n-bootstrap", "2",
            "--max-transcript-tokens", "4", "--batch-size", "2", "--no-umap", "--voices", "1",
            "--speech-cache", str(cache), *extra]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_gives_the_uninterrupted_store(tmp_path):
    """Kill the build (SIGKILL) at random moments, a few times, rerunning the same command each
    time; the store it finally publishes equals an uninterrupted build's, row for row.

    The moments are set by the build's progress, not by the clock: each run is killed once one to
    three new parts have appeared (plus a random pause of up to 0.2 s, so some kills land inside
    the next step), so how many kills happen does not depend on how fast the machine is."""
    cache = tmp_path / "speech"
    reference = tmp_path / "reference.duckdb"
    subprocess.run(_tiny_argv(reference, cache), cwd=REPO_ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    out = tmp_path / "killed.duckdb"
    parts = staging.parts_root(out)

    def n_parts() -> int:
        # os.walk skips folders that vanish while it walks (publishing removes the parts folder)
        return sum(name.endswith(".parquet") for _, _, names in os.walk(parts) for name in names)

    rng = random.Random(10)
    killed_mid_build = 0
    for _ in range(12):
        process = subprocess.Popen(_tiny_argv(out, cache), cwd=REPO_ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = n_parts() + rng.randint(1, 3)
        while process.poll() is None and n_parts() < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.2))
        if process.poll() is not None:  # published before the kill: nothing left to resume
            assert process.returncode == 0
            break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        killed_mid_build += 1
    assert killed_mid_build >= 3
    done = subprocess.run(_tiny_argv(out, cache), cwd=REPO_ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_rows(store_rows(out), store_rows(reference))
    assert not list(tmp_path.rglob("*.tmp-*")) and not staging.parts_root(out).exists()


# ---------------------------------------------------------------------- memory and batching
def test_extraction_streams_length_bucketed_batches():
    """Speech reaches the model one batch at a time, never the whole corpus, in batches of
    similar length; results come back in item order."""
    adapter = FakeAdapter()
    comp = adapter.component("speech_encoder")
    positions = [4, 0, 5, 2, 1, 3] * 3
    items = pd.DataFrame({"lang": np.repeat(FAKE_LANGS, 6), "modality": "speech",
                          "sentence_id": positions, "text": "x",
                          "duration_s": [(p + 1) * SAMPLES_PER_POSITION / 16_000 for p in positions]})
    alive, peak, batches = set(), [0], []

    def waveform(row):
        wave = np.full((row.sentence_id + 1) * SAMPLES_PER_POSITION, 0.1, dtype=np.float32)
        alive.add(id(wave))
        weakref.finalize(wave, alive.discard, id(wave))
        peak[0] = max(peak[0], len(alive))
        return wave

    real = adapter.extract

    def extract(component, inputs, langs, **kw):
        batches.append([len(w) for w in inputs])
        return real(component, inputs, langs, **kw)

    adapter.extract = extract
    extraction = component_states(adapter, comp, items, waveform, batch_size=4)
    assert peak[0] <= 4  # one batch of audio in memory, not 18 clips
    assert all(b == sorted(b) for b in batches)
    assert [max(b) for b in batches] == sorted(max(b) for b in batches)
    expected = np.stack([adapter.state(lang, p, comp.n_layers)
                         for lang, p in zip(items.lang, items.sentence_id)])
    np.testing.assert_allclose(extraction.pooled, expected, rtol=1e-6)
    np.testing.assert_array_equal(extraction.n_positions[:, 0], items.sentence_id + 1)


# ---------------------------------------------------------------------- publishing and the lock
def test_two_writers_are_serialised_and_neither_loses_its_run(fake_setup, tmp_path, monkeypatch):
    _two_models(monkeypatch)
    out = tmp_path / "lens.duckdb"
    waiting = []
    real_lock = staging.store_lock

    def recording_lock(path, **kw):
        waiting.append(threading.current_thread().name)
        return real_lock(path, **kw)

    monkeypatch.setattr(publish, "store_lock", recording_lock)
    codes = {}

    def writer(model: str) -> None:
        codes[model] = main(["build", "--corpus", str(fake_setup), "--langs", "eng_Latn,deu_Latn",
                             "--model", model, "--out", str(out), "--no-umap", "--metrics",
                             "svcca", "--n-permutations", "2", "--n-bootstrap", "2"])

    threads = [threading.Thread(target=writer, args=(m,), name=m)
               for m in ("fake-model", "fake-model-2")]
    with real_lock(out):  # a third writer holds the store: both must wait for it
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(waiting) < 2:
            assert time.monotonic() < deadline, "the writers never reached the lock"
            assert all(t.is_alive() for t in threads), codes
            time.sleep(0.05)
        time.sleep(0.2)
        assert not out.exists()  # nobody published while the lock was held
    for thread in threads:
        thread.join(timeout=120)
    assert codes == {"fake-model": 0, "fake-model-2": 0}
    with Store.open(out) as store:
        assert sorted(store.runs().model) == ["fake-model", "fake-model-2"]
        assert store.runs().status.eq("complete").all()


def test_store_lock_can_refuse_instead_of_waiting(tmp_path):
    out = tmp_path / "lens.duckdb"
    with staging.store_lock(out), pytest.raises(RuntimeError, match="another writer .*pid"), \
            staging.store_lock(out, wait=False):
        pass
    with staging.store_lock(out, wait=False):  # released: free again, and no file left behind
        pass
    assert not staging.lock_path(out).exists()


# ---------------------------------------------------------------------- shards, merge, Ray
SHARD_ARGV = ["build", "--langs", "eng_Latn,deu_Latn,ita_Latn", "--n-sentences", "4", "--model",
              "whisper-tiny-random", "--device", "cpu", "--n-permutations", "2", "--n-bootstrap",
              "2", "--max-transcript-tokens", "4", "--batch-size", "3", "--umap-n-neighbors", "3"]


@pytest.mark.slow
def test_shards_then_merge_equal_the_single_process_build(tmp_path, capsys):
    cache = ["--speech-cache", str(tmp_path / "speech")]
    single, sharded = tmp_path / "single.duckdb", tmp_path / "sharded.duckdb"
    assert main([*SHARD_ARGV, "--out", str(single), *cache]) == 0
    assert main([*SHARD_ARGV, "--out", str(sharded), *cache, "--shard", "0/2"]) == 0
    assert "python -m precompute merge --store" in capsys.readouterr().out
    assert not sharded.exists()
    assert main(["merge", "--store", str(sharded)]) == 1  # shard 1/2 has not run
    assert "lacks" in capsys.readouterr().err
    assert main([*SHARD_ARGV, "--out", str(sharded), *cache, "--shard", "1/2"]) == 0
    # metric groups computed by two worker processes: the same rows as one process
    assert main(["merge", "--store", str(sharded), "--workers", "2"]) == 0
    assert_same_rows(store_rows(sharded), store_rows(single))
    with Store.open(sharded) as store:
        assert store.counts()["projections"] > 0 and store.counts()["metrics"] > 0
    assert main(["merge", "--store", str(sharded)]) == 1  # nothing left to merge
    assert "nothing to merge" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_executor_equals_the_single_process_build(tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra in requirements-ray.txt")
    cache = ["--speech-cache", str(tmp_path / "speech")]
    argv = list(SHARD_ARGV)
    single, on_ray = tmp_path / "single.duckdb", tmp_path / "ray.duckdb"
    assert main([*argv, "--out", str(single), *cache, "--no-umap"]) == 0
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "precompute", *argv, "--out", str(on_ray), *cache,
                           "--no-umap", "--executor", "ray", "--n-shards", "2"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_rows(store_rows(on_ray), store_rows(single))


# ---------------------------------------------------------------------- bad input
def _nothing_written(tmp_path: Path, before: set[str]) -> None:
    now = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    assert now == before, sorted(now - before)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def bad_input(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for lang in ("eng_Latn", "deu_Latn"):
        (corpus / f"{lang}.dev").write_text("One sentence.\nTwo sentences.\n", encoding="utf-8")
    return corpus


def _argv(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["build", "--corpus", str(corpus), "--model", "whisper-tiny-random", "--out", str(out),
            "--speech-cache", str(corpus.parent / "cache"), *extra]


def test_unknown_model_and_language(bad_input, tmp_path, capsys):
    before = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    out = tmp_path / "x.duckdb"
    assert main(["build", "--corpus", str(bad_input), "--model", "no-such-model", "--out",
                 str(out)]) == 1
    line = _one_line_error(capsys)
    assert "unknown model 'no-such-model'" in line and "whisper-tiny-random" in line
    (bad_input / "xx_Latn.dev").write_text("One.\nTwo.\n", encoding="utf-8")
    before.add("corpus/xx_Latn.dev")
    assert main(_argv(bad_input, out, "--langs", "eng_Latn,xx_Latn")) == 1
    line = _one_line_error(capsys)
    assert "unknown language code 'xx_Latn'" in line and "FLORES-200" in line
    _nothing_written(tmp_path, before)


def test_empty_and_misaligned_corpora(bad_input, tmp_path, capsys):
    out = tmp_path / "x.duckdb"
    (bad_input / "deu_Latn.dev").write_text("Nur ein Satz.\n", encoding="utf-8")
    before = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    assert main(_argv(bad_input, out)) == 1
    line = _one_line_error(capsys)
    assert "same number of lines" in line and "deu_Latn.dev: 1 lines" in line
    for path in bad_input.iterdir():
        path.write_text("", encoding="utf-8")
    assert main(_argv(bad_input, out)) == 1
    assert "has no sentences" in _one_line_error(capsys)
    _nothing_written(tmp_path, before)


def _fleurs(root: Path, *, n: int = 2) -> Path:
    import soundfile

    for locale in ("en_us", "de_de"):
        folder = root / locale / "audio" / "test"
        folder.mkdir(parents=True)
        rows = []
        for i in range(n):
            soundfile.write(folder / f"{i}.wav", np.zeros(1600, dtype=np.float32), 16_000)
            rows.append(f"{i}\t{i}.wav\tSentence {i}.\tsentence {i}\tx\t1600\tFEMALE")
        (root / locale / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_missing_or_unreadable_audio(tmp_path, capsys):
    root = _fleurs(tmp_path / "fleurs")
    out = tmp_path / "x.duckdb"
    argv = ["build", "--corpus", str(root), "--corpus-format", "fleurs", "--model",
            "whisper-tiny-random", "--out", str(out)]
    (root / "de_de" / "audio" / "test" / "1.wav").write_bytes(b"RIFF garbage, not a wav file")
    before = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    assert main(argv) == 1
    line = _one_line_error(capsys)
    assert "cannot read audio" in line and "1.wav" in line and "--langs" in line
    (root / "de_de" / "audio" / "test" / "1.wav").unlink()
    before.discard("fleurs/de_de/audio/test/1.wav")
    assert main(argv) == 1
    line = _one_line_error(capsys)
    assert "missing" in line and "1.wav" in line
    _nothing_written(tmp_path, before)


def test_unreadable_newer_or_older_store(bad_input, tmp_path, capsys, monkeypatch):
    out = tmp_path / "x.duckdb"
    out.write_bytes(b"this is not a database")
    before = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    assert main(_argv(bad_input, out)) == 1
    assert "cannot open store" in _one_line_error(capsys)
    assert out.read_bytes() == b"this is not a database"

    out.unlink()
    Store.create(out).close()
    con = duckdb.connect(str(out))
    con.execute("INSERT INTO _migrations VALUES (?, 'from the future', now())", [SCHEMA_VERSION + 1])
    con.close()
    before = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    data = out.read_bytes()
    assert main(_argv(bad_input, out)) == 1
    line = _one_line_error(capsys)
    assert "newer than this code" in line and "update Crossmodal Lens" in line
    assert out.read_bytes() == data

    import core.store.migrations as store_module
    from core.store.schema import MIGRATIONS
    older = tmp_path / "old.duckdb"
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
    Store.create(older).close()
    monkeypatch.undo()
    before.add("old.duckdb")
    assert main(_argv(bad_input, older)) == 1
    assert f"python -m precompute migrate --store {older}" in _one_line_error(capsys)
    _nothing_written(tmp_path, before)


def test_parts_are_read_in_threads_and_in_a_forked_child(tmp_path):
    """Parts go through one DuckDB connection per process: threads each get a cursor, and a
    child forked after the parent used it opens its own (it must not touch the parent's)."""
    import multiprocessing

    workspace = staging.Workspace(tmp_path / "lens.duckdb")
    for i in range(4):
        workspace.write_part(pd.DataFrame({"value": [i, i + 1]}), "run", "items", f"l{i}")
    seen, errors = [], []

    def read(i: int) -> None:
        try:
            for _ in range(20):
                seen.append(workspace.read_part("run", "items", f"l{i}").value.tolist())
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(seen) == 80 and sorted(map(tuple, seen))[0] == (0, 1)

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(workspace, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and queue.get(timeout=5) == [2, 3]


def _read_in_child(workspace, queue) -> None:
    queue.put(workspace.read_part("run", "items", "l2").value.tolist())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_of_dead_writers_go_and_those_of_live_ones_stay(tmp_path):
    """Both clean-ups (a store's ``<out>.tmp-<pid>`` files and a build's half-written parts) remove
    only what a writer that no longer exists left behind."""
    dead, live = _dead_pid(), os.getppid()
    out = tmp_path / "lens.duckdb"
    store_temps = {pid: tmp_path / f"lens.duckdb.tmp-{pid}" for pid in (dead, live)}
    store_temps["wal"] = tmp_path / f"lens.duckdb.tmp-{dead}.wal"
    workspace = staging.Workspace(out)
    part_dir = workspace.job_dir("run") / "activations"
    part_dir.mkdir(parents=True)
    part_temps = {pid: part_dir / f"layer=0.parquet.tmp-{pid}" for pid in (dead, live)}
    for path in [*store_temps.values(), *part_temps.values()]:
        path.write_bytes(b"half")

    staging.remove_stale_temp_files(out)
    workspace.remove_stale_temp_parts()

    assert {k for k, p in store_temps.items() if p.exists()} == {live}
    assert {k for k, p in part_temps.items() if p.exists()} == {live}
