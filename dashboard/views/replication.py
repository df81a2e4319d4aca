"""Replication: the same model's findings on different corpora (or disjoint parts of one), side by
side, finding by finding."""

import pandas as pd
import streamlit as st

from core.replication import AGREE, CORPORA, DISAGREE, PARTS, UNDECIDED, compare
from core.verdicts import INTERVAL_SCOPE, NOT_APPLICABLE
from dashboard import downloads, state, url_state
from dashboard.charts.findings import verdict_colour
from dashboard.charts.replication import replication_figure

AGREEMENT_COLOURS = {AGREE: "green", DISAGREE: "red", UNDECIDED: "gray", NOT_APPLICABLE: "gray"}

st.title("Replication")
st.caption(
    "Every interval on the Findings page covers resampling of sentences **within one corpus**: it "
    "says how much a verdict would move with other sentences drawn like these, not whether other "
    "sentences would give the same answer. Here the same model's runs on different sentences are "
    "put side by side, finding by finding: each metric x control cell's effect (above the "
    "shuffled baseline) with its own 95% interval per corpus, and whether the corpora agree "
    "(the same headline; per cell the same decision, or at least the same sign).")

ref = state.store_ref()
groups, alone = state.replication_groups(ref)
runs_df = state.runs(ref, derived=True)
models = dict(zip(runs_df["run_id"], runs_df["model"], strict=True))
if alone:
    st.info("Not replicated: " + "; ".join(f"**{models.get(r, r)}** (`{r}`): {why}"
                                           for r, why in alone.items()) + ".",
            icon=":material/info:")
if not groups:
    st.warning("This store has no runs to put side by side: no model was run on two corpora and no "
               "run was split into parts. Split a run with stored activations into disjoint halves "
               "of its sentences (no model is loaded): `python -m precompute halves --store "
               f"{ref.path} --run RUN_ID`.", icon=":material/warning:")
    st.stop()

titles = [g.title for g in groups]
url_state.seed("replication_group", titles, titles[0], param="group")
chosen = st.selectbox("Runs to compare", titles, key="replication_group",
                      help="Disjoint parts of one run's sentences (`precompute halves`), or one "
                           "model's runs on different corpora; other models are never compared.")
group = groups[titles.index(chosen)]
downloads.table(pd.DataFrame({"": [f"({chr(ord('A') + i)})" for i in range(len(group.run_ids))],
                              "corpus": list(group.labels), "run": list(group.run_ids)}),
                key="replication_corpora", hide_index=True)
if group.kind == PARTS:
    st.caption(f"Each part holds different sentences of `{group.parent}` (same languages, speech "
               "and model), measured from its stored activations without running the model: only "
               "the verdict metrics and controls on the pairs the findings read. Parts have fewer "
               "sentences than their run, so their intervals are wider and mutual kNN's value "
               "(which falls as the pool grows) is not comparable with the whole run's.")
elif group.kind == CORPORA:
    st.caption("Runs of one model over different corpora: only the languages every run holds are "
               "compared, so a difference is not one of language mix.")
if group.problem:
    st.warning(group.problem, icon=":material/warning:")
    st.stop()
st.caption(f"Languages compared ({len(group.shared_langs)}): {', '.join(group.shared_langs)}")
state.speech_notice(ref, list(group.run_ids), list(group.shared_langs))

verdicts = {rid: state.run_verdicts(ref, rid, tuple(group.shared_langs)) for rid in group.run_ids}
labels = dict(zip(group.run_ids, group.labels, strict=True))
corpora = list(group.labels)
letters = {corpus: f"({chr(ord('A') + i)})" for i, corpus in enumerate(corpora)}
names = {corpus: f"{letters[corpus]} {corpus}" for corpus in corpora}
for found in compare(verdicts, labels):
    with st.container(border=True):
        st.subheader(f"{found.id}. {found.title}")
        badges = [(f"corpora: {found.agreement}", AGREEMENT_COLOURS.get(found.agreement, "orange"))]
        badges += [(f"{names[corpus]}: {headline}", verdict_colour(headline))
                   for corpus, headline in found.headlines.items()]
        st.markdown(" ".join(f":{colour}-badge[{text}]" for text, colour in badges))
        st.markdown(found.reason)
        if found.agreement == NOT_APPLICABLE or found.wide.empty:
            continue
        downloads.chart(replication_figure(found.long, corpora, interval_scope=INTERVAL_SCOPE,
                                           names=names), key=f"replication_figure_{found.id}",
                        data=found.long)
        config = {"metric": st.column_config.TextColumn("metric"),
                  "agreement": st.column_config.TextColumn(
                      "corpora", help="agree: the same decision everywhere; disagree: opposite "
                                      "decisions; same sign: the direction replicates, not every "
                                      "corpus decides it")}
        for corpus in corpora:
            letter = letters[corpus]
            config[f"{corpus} effect"] = st.column_config.NumberColumn(
                f"{letter} effect", format="%+.3f", help=f"{corpus}: above the shuffled baseline")
            config[f"{corpus} low"] = st.column_config.NumberColumn(
                f"{letter} 95% low", format="%+.3f", help=INTERVAL_SCOPE)
            config[f"{corpus} high"] = st.column_config.NumberColumn(
                f"{letter} 95% high", format="%+.3f", help=INTERVAL_SCOPE)
            config[f"{corpus} verdict"] = st.column_config.TextColumn(f"{letter} verdict")
        order = ["metric", "control", "agreement"] + [c for c in found.wide.columns
                                                      if c not in ("metric", "control", "agreement")]
        downloads.table(found.wide, hide_index=True, column_config=config, column_order=order,
                        key=f"replication_table_{found.id}")
st.caption(f"Intervals: {INTERVAL_SCOPE} (each corpus's own). Filled markers: the cell decides "
           "(its interval excludes 0 with enough sentences); hollow: it does not. Whether two "
           "corpora agree is the only thing on this page that reaches beyond one set of "
           "sentences; two parts of one corpus still share its languages, voices and authors.")
