"""Bytewax dataflows: Kafka → historian, OEE, downtime, alerts, quality → TimescaleDB (issue #4).

Imports :mod:`asbuilt` only; never :mod:`connectors` or :mod:`dashboards`.
"""
