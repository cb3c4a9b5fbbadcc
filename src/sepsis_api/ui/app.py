"""Entry point of the web UI (``streamlit run``; see ``sepsis_api.ui.launch``): page config and
navigation. Each page lives in ``pages/`` and talks to the API through ``sepsis_api.ui.client``.
"""

from __future__ import annotations

import streamlit as st

from sepsis_api.ui import common

st.set_page_config(
    page_title="Sepsis Risk", page_icon="🩺", layout="wide", initial_sidebar_state="expanded"
)

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/predict.py", title="Predict", icon=":material/person_search:"),
    st.Page("pages/batch.py", title="Batch (ward list)", icon=":material/table_view:"),
    st.Page("pages/history.py", title="History", icon=":material/history:"),
    st.Page("pages/model.py", title="Model", icon=":material/query_stats:"),
    st.Page("pages/monitoring.py", title="Monitoring", icon=":material/monitoring:"),
]

page = st.navigation(PAGES)
common.sidebar()
page.run()
