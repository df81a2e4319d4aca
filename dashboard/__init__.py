"""Streamlit + Plotly dashboard over a Crossmodal Lens store (see docs/ARCHITECTURE.md)."""
