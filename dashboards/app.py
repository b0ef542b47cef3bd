"""The asbuilt dashboards: navigation only (each page is a script in ``pages/``).

Run by ``asbuilt up`` (see :func:`dashboards.service.dashboard_service`), or by hand:
``streamlit run dashboards/app.py`` (reads the ``ASBUILT_*`` settings).
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="asbuilt", page_icon=":material/factory:", layout="wide")

PAGES = [
    st.Page("pages/plant_overview.py", title="Plant overview", icon=":material/factory:",
            default=True),
    st.Page("pages/line_performance.py", title="Line performance", icon=":material/speed:"),
    st.Page("pages/downtime_alerts.py", title="Downtime and alerts", icon=":material/warning:"),
    st.Page("pages/data_freshness.py", title="Data freshness", icon=":material/schedule:"),
    st.Page("pages/data_quality.py", title="Data quality", icon=":material/rule:"),
]  # fmt: skip

st.navigation(PAGES).run()
