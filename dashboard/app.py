"""Crossmodal Lens dashboard: ``streamlit run dashboard/app.py [-- path/to/store.duckdb]``.

The entry point only sets up the page and the navigation; each page lives in ``dashboard/views``.
The store path comes from the ``--`` argument, ``$CROSSMODAL_LENS_STORE`` or the bundled
``data/crossmodal_lens.duckdb`` (see ``dashboard.state.resolve_store_path``).
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `streamlit run` only puts dashboard/ on the path
    sys.path.insert(0, str(REPO_ROOT))

import streamlit as st  # noqa: E402

# Not "pages/": Streamlit would treat a pages/ folder beside the entry point as an old-style
# multipage app and run a deep-linked page without this file on a fresh server.
VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="Crossmodal Lens", page_icon=":material/graphic_eq:", layout="wide")
navigation = st.navigation([
    st.Page(VIEWS / "overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page(VIEWS / "heatmap.py", title="Heatmap", icon=":material/grid_on:"),
    st.Page(VIEWS / "layer_curves.py", title="Layer curves", icon=":material/show_chart:"),
    st.Page(VIEWS / "layer_matrix.py", title="Layer x layer", icon=":material/apps:",
            url_path="layer-matrix"),
    st.Page(VIEWS / "compare.py", title="Compare models", icon=":material/stacked_line_chart:",
            url_path="compare"),
    st.Page(VIEWS / "projection.py", title="Projection (UMAP)", icon=":material/scatter_plot:"),
    st.Page(VIEWS / "findings.py", title="Findings", icon=":material/fact_check:"),
    st.Page(VIEWS / "replication.py", title="Replication", icon=":material/compare:",
            url_path="replication"),
    st.Page(VIEWS / "items.py", title="Items", icon=":material/format_list_bulleted:",
            url_path="items"),
    st.Page(VIEWS / "recording.py", title="Your recording", icon=":material/mic:",
            url_path="recording"),
])
navigation.run()
