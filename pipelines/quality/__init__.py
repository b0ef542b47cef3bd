"""The quality flow: great-expectations suites over closed windows of events and over the
derived tables, results into ``dq_results``, KPI raw material into ``dq_asset_minutes``, alerts.

Run it with ``python -m pipelines.quality`` (see :mod:`pipelines.quality.flow`).
"""
