"""What a build's log says: one line per stage with its wall time and what it produced, each
warning once per run naming the stage that chose the k, and progress bars only for work that
happens (a FLEURS-layout corpus has recordings: no synthesis bar).

The build here is the fake model (``precompute_helpers``) over a tiny FLEURS-layout corpus whose
clips are real wav files; the assertions read the format and the counts, never a duration."""

# ruff: noqa: F811 - fake_setup is precompute_helpers' fixture, imported to be requested here
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

import core.corpus
from core.corpus import ParallelCorpus
from core.metrics import grid
from precompute.cli import main
from precompute.extract import speech_work
from precompute.measure_parts import Measured
from precompute.stagelog import Stage, counted, format_duration
from precompute.variants import SVCCA_KS, k_grid_notes, svcca_ks
from precompute_helpers import (
    FAKE_CORPUS,
    SAMPLES_PER_POSITION,
    fake_argv,
    fake_registry,
    fake_setup,  # noqa: F401 - a fixture
)

DURATION = r"(\d+\.\d s|\d+ min \d\d s|\d+ h \d\d min)"
LOCALES = {"eng_Latn": "en_us", "deu_Latn": "de_de"}


def _fleurs_corpus(root: Path) -> Path:
    """The fake corpus's English and German in the extracted FLEURS layout, each clip a real wav
    whose length tells the fake model its sentence (as ``fake_speech`` does)."""
    import soundfile

    for lang, locale in LOCALES.items():
        folder = root / locale / "audio" / "test"
        folder.mkdir(parents=True)
        rows = []
        for position, text in enumerate(FAKE_CORPUS[lang]):
            samples = (position + 1) * SAMPLES_PER_POSITION
            soundfile.write(folder / f"{position}.wav", np.full(samples, 0.1, dtype=np.float32),
                            16_000)
            rows.append(f"{position}\t{position}.wav\t{text}\t{text.lower()}\tx\t{samples}\tFEMALE")
        (root / locale / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _stderr_lines(text: str) -> list[str]:
    """stderr split on newlines and on the carriage returns progress bars redraw with."""
    return [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]


def test_fleurs_build_log_says_each_stage_once_and_warns_once(tmp_path, monkeypatch, capsys):
    recorded = core.corpus.speech_waveform
    fake_registry(monkeypatch)
    monkeypatch.setattr(core.corpus, "speech_waveform", recorded)  # the wav files, decoded
    root = _fleurs_corpus(tmp_path / "fleurs")
    out = tmp_path / "fleurs.duckdb"
    argv = ["build", "--corpus", str(root), "--corpus-format", "fleurs", "--langs",
            ",".join(LOCALES), "--model", "fake-model", "--out", str(out), "--n-permutations", "3",
            "--n-bootstrap", "4", "--no-umap", "--device", "cpu"]
    assert main(argv) == 0
    lines = _stderr_lines(capsys.readouterr().err)

    # one line per stage, with what it produced and a wall time (its value is not checked)
    def stage(label: str) -> list[str]:
        return [line for line in lines if re.search(rf"stage {label}: .+ in {DURATION}$", line)]

    assert len(stage("0 plan and check")) == 1
    assert "2 languages x 6 sentences" in stage("0 plan and check")[0]
    assert "1 run to build" in stage("0 plan and check")[0]
    (extract,) = stage("1 extract")
    assert "fake-model: 2 languages, 12 texts, 12 clips, 2 components (8 layers)" in extract
    (measured,) = stage(r"2 measure fake-model-\w+")
    groups = int(re.search(r"(\d+) metric groups", measured).group(1))
    assert groups > 1, "one group could not show a warning repeated per group"
    assert "no UMAP maps (--no-umap)" in measured
    (published,) = stage(r"3 publish fake-model-\w+")
    assert str(out) in published and "MiB" in published
    assert len([line for line in lines if "precompute: stage " in line]) == 4

    # the k-sensitivity grid's k: saturation said once per run (not per group), with who chose k
    saturated = [line for line in lines if "above n_samples/4" in line]
    assert len(saturated) == 1 and "WARNING" in saturated[0]
    assert "k = 2 above n_samples/4 = 1.5" in saturated[0]
    assert "k-sensitivity grid" in saturated[0] and "chosen by the build" in saturated[0]
    dropped = [line for line in lines if "left out" in line]
    assert len(dropped) == 1 and "k = 4, 8, 16, 32, 64 left out" in dropped[0]
    assert not any("UserWarning" in line for line in lines)

    # bars: reading the recordings, never a synthesis (nothing is synthesised)
    assert any(line.startswith("read eng_Latn recordings") for line in lines)
    assert not any("synthesise" in line or "voice 1" in line for line in lines)

    # run again: the run is complete, so there is no stage 1, 2 or 3 and no bar
    assert main(argv) == 0
    again = _stderr_lines(capsys.readouterr().err)
    assert [line for line in again if "precompute: stage " in line] == [
        line for line in again if re.search(rf"stage 0 plan and check: .+ in {DURATION}$", line)]
    assert any("0 runs to build, 1 already complete" in line for line in again)
    assert not any("%|" in line for line in again)


def test_synthesised_speech_has_a_synthesis_bar(fake_setup, tmp_path, capsys):
    assert main(fake_argv(fake_setup, tmp_path / "line.duckdb", "--no-umap", "--metrics",
                          "linear_cka", "--n-sentences", "3")) == 0
    lines = _stderr_lines(capsys.readouterr().err)
    assert any(line.startswith("synthesise eng_Latn speech, espeak-ng voice 1") for line in lines)
    assert not any(line.startswith("read ") for line in lines)


def test_speech_work_names_what_happens():
    texts = {"eng_Latn": ["One.", "Two."], "deu_Latn": ["Eins.", "Zwei."],
             "fra_Latn": ["Un.", "Deux."]}
    audio = {"eng_Latn": ["/a/0.wav", "/a/1.wav"], "deu_Latn": [None, None],
             "fra_Latn": ["/f/0.wav", None]}
    corpus = ParallelCorpus("c", ["eng_Latn", "deu_Latn", "fra_Latn"], [0, 1], texts, audio)
    assert speech_work(corpus, "eng_Latn", 0) == "read eng_Latn recordings"
    assert speech_work(corpus, "deu_Latn", 1) == "synthesise deu_Latn speech, espeak-ng voice 2"
    assert speech_work(corpus, "fra_Latn", 0) == ("synthesise fra_Latn speech, espeak-ng voice 1 "
                                                  "(1 recordings read)")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0.0 s"), (12.34, "12.3 s"), (59.9, "59.9 s"), (59.97, "1 min 00 s"), (192, "3 min 12 s"),
    (3599.4, "59 min 59 s"), (3600, "1 h 00 min"), (7322, "2 h 02 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_format_duration_refuses_negative_and_counted_pluralises():
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)
    assert counted(1, "clip") == "1 clip" and counted(5200, "clip") == "5,200 clips"
    assert counted(2, "map", "maps drawn") == "2 maps drawn"


def test_stage_logs_on_success_only(caplog):
    logger = logging.getLogger("precompute")
    logger.addHandler(caplog.handler)  # the CLI stops propagation to the root logger
    try:
        with caplog.at_level(logging.INFO, logger="precompute"):
            with Stage("9 example") as stage:
                stage.produced = "3 things"
            with pytest.raises(RuntimeError), Stage("9 failing"):
                raise RuntimeError("boom")
            with Stage("9 idle"):
                pass
    finally:
        logger.removeHandler(caplog.handler)
    messages = [r.getMessage() for r in caplog.records if r.name == "precompute"]
    assert len(messages) == 2
    assert re.fullmatch(rf"stage 9 example: 3 things in {DURATION}", messages[0])
    assert re.fullmatch(rf"stage 9 idle: nothing to do in {DURATION}", messages[1])


def test_k_grid_notes_follow_n():
    assert svcca_ks(6) == ([2], [4, 8, 16, 32, 64])
    assert svcca_ks(1000) == (list(SVCCA_KS), [])
    assert k_grid_notes(1000) == []  # every k computed, none above n / 4
    levels = dict(k_grid_notes(80))  # k < 40: 64 left out; 32 > 20 saturates
    assert "k = 64 left out" in levels[logging.INFO] and "n_samples/2 = 40" in levels[logging.INFO]
    assert "k = 32 above n_samples/4 = 20" in levels[logging.WARNING]
    (note,) = k_grid_notes(200)  # every k < 100 computed; 64 > 50 saturates
    assert note[0] == logging.WARNING and "k = 64 above n_samples/4 = 50" in note[1]


def test_grid_saturation_warning_can_be_left_to_the_caller(recwarn):
    rng = np.random.default_rng(1)
    sides = {"a": rng.standard_normal((12, 4)), "b": rng.standard_normal((12, 6))}
    table = grid.compute_grid(sides, [("a", "b")], [grid.MetricSpec("svcca", {"k": 4})],
                              n_permutations=3, n_bootstrap=4, device="cpu", warn_saturated=False)
    assert np.isfinite(table.value[0])
    assert not [w for w in recwarn if "saturates" in str(w.message)]


def test_measured_summary_says_what_was_done_and_found():
    assert Measured(3, 0, 84, 60, 0, 0, umap=False).summary() == (
        "3 metric groups (84 metric rows, 60 variant rows), no UMAP maps (--no-umap)")
    assert Measured(1, 2, 10, 5, 6, 1).summary() == (
        "1 metric group (10 metric rows, 5 variant rows), 2 already done; 6 UMAP maps, "
        "1 already done")
