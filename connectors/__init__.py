"""Connectors: OPC UA servers → the asbuilt event contract → Kafka (issue #3).

Imports :mod:`asbuilt` only; never :mod:`pipelines` or :mod:`dashboards`.
"""
