"""Streamlit dashboards over TimescaleDB, through a read-only role (issue #5).

Imports :mod:`asbuilt` only; never :mod:`connectors` or :mod:`pipelines`.
"""
