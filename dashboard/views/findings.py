"""The reference study's four findings, checked on this store."""

import streamlit as st

from core import findings as findings_core
from core.verdicts import CONTROLS, INTERVAL_SCOPE, NOT_APPLICABLE
from dashboard import availability, downloads, sidebar, state
from dashboard.charts.findings import finding_figure, k_sensitivity_figure, verdict_colour

st.title("Findings")
st.caption("The four findings of Lee et al. (2024, arXiv:2411.17666), re-checked on the chosen run "
           "and metric. Verdicts compare values **above their own shuffled-pairs baseline** (value − "
           "baseline: pairings of different chance levels are never compared raw), averaged over "
           "languages and layers with 95% intervals bootstrapped jointly over the same sentence "
           "resamples. A finding *holds* when the interval of its corrected effect excludes zero in "
           "the reported direction; too few sentences or resamples, or a zero-width interval, decide "
           "nothing.")

ref = state.store_ref()
sel = sidebar.sidebar(ref, langs=False, view=False)
only = availability.reads_only_message(state.components(ref, sel.run_id), sel.model)
if only:
    st.info(only + " All four findings involve speech, so none can be checked on this run.",
            icon=":material/info:")
state.speech_notice(ref, [sel.run_id])
levels = state.run_languages(ref, sel.run_id)
if not levels.empty:
    st.caption(f"Resource levels of this run: {levels['level_source'].iloc[0]}")
st.caption(f"Each finding is evaluated under every stored metric that applies (SVCCA, linear and "
           f"debiased CKA, mutual kNN) and every control of the run ({', '.join(CONTROLS)}). The "
           f"headline says *holds* or *does not hold* only where every decided cell agrees, "
           f"*mixed* where they disagree (naming them), *not enough data* where none decides, and "
           f"*not applicable* where the model has no such stage or modality. Intervals: "
           f"{INTERVAL_SCOPE}; they say nothing about other corpora. The figure and summary below "
           f"each table are the sidebar's metric ({sel.metric}) on raw values.")
for found in state.verdicts(ref, sel.run_id, sel.metric):
    finding = found.detail
    with st.container(border=True):
        st.subheader(f"{found.id}. {found.title}")
        st.badge(found.headline, color=verdict_colour(found.headline))
        st.markdown(found.reason)
        if not found.cells.empty:
            downloads.table(found.cells, hide_index=True, key=f"verdicts_{found.id}", column_config={
                "effect": st.column_config.NumberColumn("effect (above baseline)", format="%+.3f"),
                "ci_low": st.column_config.NumberColumn("95% low", format="%+.3f",
                                                        help=INTERVAL_SCOPE),
                "ci_high": st.column_config.NumberColumn("95% high", format="%+.3f",
                                                         help=INTERVAL_SCOPE),
                "note": st.column_config.TextColumn("how (or why undecided)")})
        if found.missing:
            st.caption("Not evaluated: " + "; ".join(found.missing) + ".")
        if finding is None or found.headline == NOT_APPLICABLE:
            continue
        badges = st.columns([1, 3])
        with badges[0]:
            st.badge(f"{sel.metric}, raw: {finding.verdict}", color=verdict_colour(finding.verdict))
        if finding.raw_verdict and finding.raw_verdict != finding.verdict:
            with badges[1]:
                st.badge(f"raw values would say: {finding.raw_verdict}", color="gray")
        st.markdown(finding.summary)
        figure = finding_figure(finding.details, metric=f"{sel.metric} − shuffled baseline")
        if figure is not None:
            downloads.chart(figure, key=f"finding_{finding.id}")
        if finding.details is not None and not finding.details.empty:
            with st.expander("Numbers behind it (value: corrected; raw and baseline beside it)"):
                downloads.table(finding.details, hide_index=True, key=f"finding_{finding.id}_numbers")

variants = state.metric_variants(ref, sel.run_id)
st.subheader("How SVCCA's value and chance level move with k", divider="gray")
sensitivity = findings_core.k_sensitivity(variants)
if sensitivity.empty:
    st.info("This run has no SVCCA-at-k rows (a store built before they existed, or SVCCA not "
            "computed): rebuild it, or run `python -m precompute metrics` on it.",
            icon=":material/info:")
else:
    downloads.chart(k_sensitivity_figure(sensitivity), key="k_sensitivity")
warned = sensitivity[sensitivity["warn"]] if not sensitivity.empty else sensitivity
if not warned.empty:
    st.warning("The shuffled baseline reaches 80% of the value for "
               + "; ".join(f"{family} at k ≥ {int(group['k'].min())}"
                           for family, group in warned.groupby("family"))
               + ": at those k, SVCCA of these sentences says little beyond chance.",
               icon=":material/warning:")
st.caption("SVCCA of unrelated data rises towards 1 as k approaches the number of sentences, so a "
           "value is read against its baseline at the same k. Hollow markers: baseline at 80% of "
           "the value or more.")

st.subheader("Does it survive length matching?", divider="gray")
matched = findings_core.length_matched_summary(state.metrics(ref, sel.run_id, metric="svcca"),
                                               variants)
if matched.empty:
    st.info("No length-matched rows in this run (too few sentences near the median length, or a "
            "store built before they existed).", icon=":material/info:")
else:
    downloads.table(matched, hide_index=True, key="length_matched", column_config={
        "all_sentences": st.column_config.NumberColumn("SVCCA − baseline, all sentences",
                                                       format="%.3f"),
        "length_matched": st.column_config.NumberColumn("SVCCA − baseline, length-matched",
                                                        format="%.3f"),
        "n_matched": st.column_config.NumberColumn("sentences kept (median)", format="%d")})
    st.caption("Length-matched: only sentences within 25% of the median length on both sides, so "
               "length hardly varies and cannot carry the similarity; each pair has its own "
               "baseline on its subset. Means over pairs and layers.")
