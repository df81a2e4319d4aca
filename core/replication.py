"""Replication: the same model's findings on different corpora, side by side (pure pandas).

A verdict's interval covers sentence resampling *within one corpus* (``core.verdicts``): it says
nothing about whether another set of sentences, written by other people, would give the same
answer. Replication asks exactly that, by evaluating the same model's findings on runs over
different sentences and putting them side by side, finding by finding:

- **runs on different corpora** (e.g. the bundled corpus and FLORES-200 text): the same model,
  different sentences and possibly different languages. Only the languages both runs hold are
  compared (``shared_langs``), so a difference is not one of language mix; runs without a
  language in common cannot be compared (said, not hidden);
- **disjoint parts of one run's sentences** (``precompute halves``: derived runs whose config
  names the parent, the sentence ids and the seed, ``derivation``): the same languages and
  speech synthesis, other sentences. Parts are independent samples of one corpus, so their
  agreement is the least a finding must show; the run they come from is not one of them (it holds
  their sentences).

Agreement, per cell (metric x control) and per finding:

- decided cells (holds / does not hold) that say the same -> ``AGREE``; decided cells that say
  opposite things -> ``DISAGREE``;
- otherwise the effects' signs: all the same -> ``SAME_SIGN`` (the direction replicates, not every
  corpus decides it); different -> ``OPPOSITE_SIGNS``; an effect some corpus could not compute at
  all -> ``NO_EFFECT``;
- a cell some corpus lacks -> ``MISSING``.

A finding's corpora agree when their headlines (``core.verdicts.headline``) are the same and say
something ("not enough data" everywhere is ``UNDECIDED``, not agreement); the cell counts say how
much of the table stands behind that.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

import pandas as pd

from core import findings
from core.metrics.joint import DOES_NOT_HOLD, HOLDS, NOT_ENOUGH_DATA
from core.verdicts import INTERVAL_SCOPE, NOT_APPLICABLE, FindingVerdict, evaluate

#: The run config key that marks a derived run (``precompute halves``) and says where it comes from.
DERIVED_KEY = "derived_from"
AGREE, DISAGREE, SAME_SIGN, OPPOSITE_SIGNS, NO_EFFECT, MISSING = (
    "agree", "disagree", "same sign, not all decided", "opposite signs, undecided",
    "no effect on some corpus", "missing")
#: A finding every corpus leaves undecided: the same headline, but nothing replicated.
UNDECIDED = "undecided everywhere"
PARTS, CORPORA = "parts", "corpora"
LONG_COLUMNS = ["metric", "control", "corpus", "run_id", "effect", "ci_low", "ci_high", "verdict"]


@dataclass(frozen=True)
class RunInfo:
    """What pairing needs to know of a run (from ``Store.runs`` and ``Store.components``)."""

    run_id: str
    model: str
    langs: tuple[str, ...]
    config: Mapping
    has_speech: bool = True
    complete: bool = True


@dataclass(frozen=True)
class ReplicationGroup:
    """Runs of one model to put side by side: ``kind`` ``PARTS`` (disjoint parts of ``parent``'s
    sentences) or ``CORPORA`` (runs over different corpora); ``labels`` name each run's corpus;
    ``shared_langs`` the languages every run holds (only these are compared); ``problem`` why the
    group cannot be compared (empty when it can)."""

    model: str
    kind: str
    run_ids: tuple[str, ...]
    labels: tuple[str, ...]
    shared_langs: tuple[str, ...]
    parent: str = ""
    problem: str = ""

    @property
    def title(self) -> str:
        if self.kind == PARTS:
            return (f"{self.model}: {len(self.run_ids)} disjoint parts of the sentences of "
                    f"{self.parent}")
        return f"{self.model}: {len(self.run_ids)} runs on different corpora"


@dataclass(frozen=True)
class FindingReplication:
    """One finding across the runs of a group: each run's headline, whether they agree, why,
    the cells side by side (``long``: one row per cell and corpus; ``wide``: one row per metric x
    control with each corpus's effect, interval and verdict, and the cell's agreement)."""

    id: int
    title: str
    headlines: dict[str, str]
    agreement: str
    reason: str
    long: pd.DataFrame
    wide: pd.DataFrame
    cell_counts: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- the runs


def derivation(config: Mapping | str | None) -> dict | None:
    """Where a derived run comes from (``DERIVED_KEY`` of its config: parent run id, part, number
    of parts, seed, sentence ids), or None for a run built from a corpus."""
    if isinstance(config, str):
        config = json.loads(config)
    found = (config or {}).get(DERIVED_KEY)
    return dict(found) if found else None


def is_derived(config: Mapping | str | None) -> bool:
    """Whether a run was derived from another's stored activations (``precompute halves``): it
    holds verdict metrics only (no activations, maps or other metrics), so pages that read those
    leave it out."""
    return derivation(config) is not None


def corpus_label(config: Mapping | str | None) -> str:
    """A run's corpus in a few words: its name and size, or for a derived run which part of its
    parent's sentences it holds."""
    if isinstance(config, str):
        config = json.loads(config)
    config = config or {}
    derived = derivation(config)
    n = config.get("n_sentence_ids")
    size = f", {n} sentences" if n else ""
    if derived:
        return (f"part {derived['part']} of {derived['n_parts']} (seed {derived['seed']}"
                f"{size})")
    name = str(config.get("corpus_name") or config.get("corpus") or "corpus")
    where = str(config.get("corpus") or "")
    if where and where != "bundled":  # a directory: its last two parts (e.g. flores200/dev)
        name = "/".join(PurePath(where).parts[-2:]) or name
    return f"{name}{size}"


def corpus_key(config: Mapping) -> str:
    """What tells two runs' corpora apart: the corpus source the build recorded (its path,
    format and split), else its name."""
    return str(config.get("corpus_source") or config.get("corpus_name") or config.get("corpus")
               or "")


def shared_langs(lang_lists: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The languages every list holds, in the first list's order."""
    if not lang_lists:
        return ()
    common = set(lang_lists[0]).intersection(*map(set, lang_lists[1:]))
    return tuple(lang for lang in lang_lists[0] if lang in common)


def replication_groups(runs: Sequence[RunInfo]) -> list[ReplicationGroup]:
    """The groups ``runs`` (one store's, or several stores' together) allow: per parent run with
    derived parts, its parts (one group per number of parts and seed); per model with complete
    runs on at least two corpora (``corpus_key``), its newest run on each (matched by model: other
    models are never compared). Incomplete runs are left out."""
    complete = [r for r in runs if r.complete]
    groups: list[ReplicationGroup] = []
    splits: dict[tuple[str, int, int], list[tuple[int, RunInfo]]] = {}
    for run in complete:
        derived = derivation(run.config)
        if derived:
            key = (str(derived["run_id"]), int(derived["n_parts"]), int(derived["seed"]))
            splits.setdefault(key, []).append((int(derived["part"]), run))
    for (parent, _, _), parts in splits.items():
        parts = [run for _, run in sorted(parts, key=lambda p: p[0])]
        groups.append(_group(parts[0].model, PARTS, parts, parent=parent))
    by_model: dict[str, list[RunInfo]] = {}
    for run in complete:
        if not is_derived(run.config):
            by_model.setdefault(run.model, []).append(run)
    for model, own in by_model.items():
        newest: dict[str, RunInfo] = {}  # one run per corpus: the newest (later in ``runs``)
        for run in own:
            newest[corpus_key(run.config)] = run
        if len(newest) > 1:
            groups.append(_group(model, CORPORA, list(newest.values())))
    return groups


def _group(model: str, kind: str, runs: Sequence[RunInfo], *, parent: str = "") -> ReplicationGroup:
    labels = [corpus_label(r.config) for r in runs]
    if len(set(labels)) < len(labels):  # two runs over corpora of one name: tell them apart
        labels = [f"{label} · {r.run_id}" for label, r in zip(labels, runs)]
    common = shared_langs([r.langs for r in runs])
    problem = ""
    if len(runs) < 2:
        problem = "Only one run: nothing to put beside it."
    elif not common:
        problem = ("No language in common: " + "; ".join(
            f"{label} has {', '.join(r.langs) or 'none'}" for label, r in zip(labels, runs))
            + ". Build the runs over at least one shared language.")
    elif not all(r.has_speech for r in runs):
        problem = ("A run reads only text: every finding involves speech, so none can be compared "
                   "(all are not applicable).")
    return ReplicationGroup(model, kind, tuple(r.run_id for r in runs), tuple(labels), common,
                            parent, problem)


def unreplicated(runs: Sequence[RunInfo], groups: Sequence[ReplicationGroup]) -> dict[str, str]:
    """run id -> why it is in no group (e.g. the only run of its model, without stored activations
    to split): what the replication view says instead of leaving it out silently."""
    grouped = {rid for g in groups for rid in g.run_ids} | {g.parent for g in groups}
    compared_models = {g.model for g in groups if g.kind == CORPORA}
    out = {}
    for run in runs:
        if run.run_id in grouped or is_derived(run.config):
            continue
        if run.model in compared_models and run.complete:
            out[run.run_id] = ("a newer run of its model on the same corpus is compared instead "
                               "(one run per corpus)")
        elif not run.complete:
            out[run.run_id] = "incomplete run"
        else:
            out[run.run_id] = _alone(run)
    return out


def _alone(run: RunInfo) -> str:
    """Why a complete run, the only one of its model, is in no group."""
    stored = run.config.get("store_activations", True) is not False
    why = []
    if not run.has_speech:
        why.append("reads only text, so no finding applies to it")
    if not stored:
        why.append("was built without stored activations (--no-store-activations), so its "
                   "sentences cannot be split into parts without running the model again")
    if why:
        return "the only run of its model; it " + " and ".join(why)
    return (f"the only run of its model: split it with `python -m precompute halves --run "
            f"{run.run_id}`, or build the model on another corpus")


def run_info(run: Mapping, components: pd.DataFrame) -> RunInfo:
    """A ``Store.runs`` row (config as JSON text or dict) and its ``Store.components`` as a
    ``RunInfo``; its languages are the config's ``run_langs`` (else ``corpus_langs``)."""
    config = run["config"]
    config = json.loads(config) if isinstance(config, str) else dict(config or {})
    langs = tuple(config.get("run_langs") or config.get("corpus_langs") or ())
    has_speech = bool((components["modality"] == "speech").any()) if not components.empty else False
    return RunInfo(str(run["run_id"]), str(run["model"]), langs, config, has_speech,
                   run.get("status", "complete") == "complete")


def on_langs(frame: pd.DataFrame | None, langs: Sequence[str]) -> pd.DataFrame | None:
    """Rows (metrics, variants) whose two languages are both among ``langs``."""
    if frame is None or frame.empty:
        return frame
    keep = set(langs)
    return frame[frame["lang_a"].isin(keep) & frame["lang_b"].isin(keep)].reset_index(drop=True)


def evaluate_on(langs: Sequence[str], metrics: pd.DataFrame, variants: pd.DataFrame | None,
                levels: pd.DataFrame, components: pd.DataFrame, *,
                n_permutations: int | None = None,
                detail_metric: str = "svcca") -> list[FindingVerdict]:
    """``core.verdicts.evaluate`` on the rows of ``langs`` only (the languages a group shares)."""
    levels = levels[levels["lang"].isin(set(langs))] if not levels.empty else levels
    return evaluate(on_langs(metrics, langs), levels, components, on_langs(variants, langs),
                    detail_metric=detail_metric, n_permutations=n_permutations)


# ------------------------------------------------------------------------------ side by side


def long_table(verdicts: Mapping[str, Sequence[FindingVerdict]], labels: Mapping[str, str],
               finding_id: int) -> pd.DataFrame:
    """One finding's cells of every run, one row per (metric, control, corpus) (``LONG_COLUMNS``)."""
    frames = []
    for run_id, found in verdicts.items():
        for verdict in found:
            if verdict.id != finding_id or verdict.cells.empty:
                continue
            frames.append(verdict.cells.assign(corpus=labels[run_id], run_id=run_id))
    if not frames:
        return pd.DataFrame(columns=LONG_COLUMNS)
    return pd.concat(frames, ignore_index=True)[LONG_COLUMNS]


def cell_agreement(verdicts: Sequence[str], effects: Sequence[float], n_corpora: int) -> str:
    """One metric x control cell across corpora, by the module's rule."""
    if len(verdicts) < n_corpora:
        return MISSING
    decided = {v for v in verdicts if v in (HOLDS, DOES_NOT_HOLD)}
    if len(decided) > 1:
        return DISAGREE
    if decided and all(v in decided for v in verdicts):
        return AGREE
    if not all(math.isfinite(e) for e in effects):
        return NO_EFFECT
    signs = {math.copysign(1.0, e) if e != 0 else 0.0 for e in effects}
    return SAME_SIGN if len(signs) == 1 and 0.0 not in signs else OPPOSITE_SIGNS


def wide_table(long: pd.DataFrame, corpora: Sequence[str]) -> pd.DataFrame:
    """Per metric x control: each corpus's effect, interval and verdict beside the others, and the
    cell's agreement (``cell_agreement``)."""
    columns = ["metric", "control"] + [f"{c} {part}" for c in corpora
                                       for part in ("effect", "low", "high", "verdict")] + \
        ["agreement"]
    if long.empty:
        return pd.DataFrame(columns=columns)
    records = []
    for (metric, control), cells in long.groupby(["metric", "control"], sort=False):
        record: dict = {"metric": metric, "control": control}
        for corpus in corpora:
            own = cells[cells["corpus"] == corpus]
            row = own.iloc[0] if not own.empty else None
            record[f"{corpus} effect"] = float(row["effect"]) if row is not None else math.nan
            record[f"{corpus} low"] = float(row["ci_low"]) if row is not None else math.nan
            record[f"{corpus} high"] = float(row["ci_high"]) if row is not None else math.nan
            record[f"{corpus} verdict"] = str(row["verdict"]) if row is not None else MISSING
        present = cells.drop_duplicates("corpus")
        record["agreement"] = cell_agreement(list(present["verdict"]),
                                             [float(e) for e in present["effect"]], len(corpora))
        records.append(record)
    return pd.DataFrame(records, columns=columns)


def compare(verdicts: Mapping[str, Sequence[FindingVerdict]],
            labels: Mapping[str, str]) -> list[FindingReplication]:
    """Each finding across the runs of ``verdicts`` (run id -> ``core.verdicts.evaluate``'s list,
    in display order), with the runs' headlines, whether they agree and the cells side by side."""
    corpora = [labels[r] for r in verdicts]
    out = []
    for finding_id, title in findings.TITLES.items():
        headlines = {labels[r]: next((v.headline for v in found if v.id == finding_id),
                                     NOT_ENOUGH_DATA) for r, found in verdicts.items()}
        long = long_table(verdicts, labels, finding_id)
        wide = wide_table(long, corpora)
        counts = {k: int(v) for k, v in wide["agreement"].value_counts().items()} \
            if not wide.empty else {}
        agreement, reason = finding_agreement(headlines, counts)
        out.append(FindingReplication(finding_id, title, headlines, agreement, reason, long, wide,
                                      counts))
    return out


def finding_agreement(headlines: Mapping[str, str], counts: Mapping[str, int]) -> tuple[str, str]:
    """(agreement, why) of one finding: the corpora agree when their headlines are the same."""
    distinct = set(headlines.values())
    if distinct == {NOT_APPLICABLE}:
        return NOT_APPLICABLE, "The finding does not apply to this model on any corpus."
    cells = sum(counts.values())
    tally = ", ".join(f"{n} {name}" for name, n in counts.items()) if counts else "no cells"
    if distinct == {NOT_ENOUGH_DATA}:
        return UNDECIDED, (f"No corpus decides it, so there is nothing to replicate. Of {cells} "
                           f"metric x control cells: {tally}.")
    if len(distinct) == 1:
        (only,) = distinct
        return AGREE, (f"Every corpus says {only}. Of {cells} metric x control cells: {tally}.")
    said = "; ".join(f"{corpus}: {h}" for corpus, h in headlines.items())
    return DISAGREE, f"The corpora differ ({said}). Of {cells} metric x control cells: {tally}."


def format_replication(group: ReplicationGroup,
                       compared: Sequence[FindingReplication] | None) -> str:
    """Plain text of one group (``precompute report``): the runs (lettered) and languages, then per
    finding the agreement, why, and a table of each cell's effect [interval] and verdict per
    corpus with the cell's agreement."""
    letters = [f"({chr(ord('A') + i)})" for i in range(len(group.run_ids))]
    lines = [f"-- replication: {group.title} --"]
    lines += [f"   {letter} {label}: {rid}"
              for letter, rid, label in zip(letters, group.run_ids, group.labels)]
    if group.problem:
        return "\n".join(lines + [f"   Not compared: {group.problem}"])
    lines.append(f"   Languages compared ({len(group.shared_langs)}): "
                 f"{', '.join(group.shared_langs)}")
    for found in compared or []:
        lines.append(f"{found.id}. {found.title}: corpora {found.agreement.upper()}")
        lines.append(f"   {found.reason}")
        if found.wide.empty:
            continue
        table = pd.DataFrame({"metric": found.wide["metric"], "control": found.wide["control"]})
        for letter, label in zip(letters, group.labels):
            table[f"{letter} effect [95%]"] = [_interval_text(r, label)
                                               for r in found.wide.to_dict("records")]
            table[f"{letter} verdict"] = found.wide[f"{label} verdict"]
        table["agreement"] = found.wide["agreement"]
        lines += ["   " + line for line in table.to_string(index=False).splitlines()]
    lines.append(f"   ({INTERVAL_SCOPE}: each corpus's own; whether the corpora agree is what says "
                 "something beyond one set of sentences.)")
    return "\n".join(lines)


def _interval_text(record: Mapping, corpus: str) -> str:
    """``+0.051 [+0.043, +0.059]`` for one corpus's cell of a ``wide_table`` row."""
    effect, low, high = (float(record[f"{corpus} {part}"]) for part in ("effect", "low", "high"))
    if not math.isfinite(effect):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{effect:+.3f}"
    return f"{effect:+.3f} [{low:+.3f}, {high:+.3f}]"
