"""The reference study's four findings, checked on this store."""

import streamlit as st

from dashboard import availability, charts, state

st.title("Findings")
st.caption("The four findings of Lee et al. (2024, arXiv:2411.17666), re-checked on the chosen run "
           "and metric from the stored values and their bootstrap CIs. A finding *holds* when its "
           "effect's 95% CI excludes zero in the reported direction.")

ref = state.store_ref()
sel = state.sidebar(ref, langs=False, view=False)
only = availability.reads_only_message(state.components(ref, sel.run_id), sel.model)
if only:
    st.info(only + " All four findings involve speech, so none can be checked on this run.",
            icon=":material/info:")
for finding in state.findings(ref, sel.run_id, sel.metric):
    with st.container(border=True):
        st.subheader(f"{finding.id}. {finding.title}")
        st.badge(str(finding.verdict), color=charts.verdict_colour(finding.verdict))
        st.markdown(finding.summary)
        figure = charts.finding_figure(finding.details, metric=sel.metric)
        if figure is not None:
            st.plotly_chart(figure, key=f"finding_{finding.id}")
        if finding.details is not None and not finding.details.empty:
            with st.expander("Numbers behind it"):
                st.dataframe(finding.details, hide_index=True)
