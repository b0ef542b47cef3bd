"""Alerts from data quality: a failing suite raises an alert per asset. Pure, no I/O.

Same records as the downtime flow's alerts (:class:`pipelines.downtime.alerts.Alert`, the
``alerts`` table and topic): rule ``dq.<suite>``, kind ``dq``, severity ``warning``, asset = the
asset of the failing rows (``*`` for failures no asset can be named for -- a message that is
not even JSON, an aggregate expectation). Per (suite, asset):

- raised at the ``window_start`` of the first window where the asset fails (revision 0;
  ``alert_id`` = uuid5 over (rule, asset, raised_ts), the downtime flow's id);
- updated (revision + 1) by every further failing window: the evidence names the window, the
  failing expectations with their counts and examples;
- cleared (revision + 1, ``cleared_ts`` = that window's start) by the first window of the suite
  in which the asset has no failure.

Windows are taken in order; a window older than the newest one seen (a table hour re-validated
after the next hour) updates ``dq_results`` but moves no alert, so a re-validation never
re-raises an alert that a later window cleared. The same window seen again with the same
evidence emits nothing. Everything is derived from the windows, never from when they were
validated, so a replay emits the same records (the sinks absorb them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pipelines.downtime.alerts import Alert, alert_id
from pipelines.quality.gx import DqResult

__all__ = ["ANY_ASSET", "KIND", "SuiteAlerts", "failures_by_asset"]

ANY_ASSET: Final = "*"
KIND: Final = "dq"
SEVERITY: Final = "warning"


def failures_by_asset(results: Iterable[DqResult]) -> dict[str, list[DqResult]]:
    """The failed rows of one validation by asset: the per-asset rows, and a failed window row
    that has none under :data:`ANY_ASSET`."""
    results = list(results)
    named = {(r.expectation) for r in results if not r.success and r.asset}
    out: dict[str, list[DqResult]] = {}
    for r in results:
        if r.success:
            continue
        if r.asset:
            out.setdefault(r.asset, []).append(r)
        elif r.expectation not in named:
            out.setdefault(ANY_ASSET, []).append(r)
    return out


def _evidence(suite: str, start: datetime, end: datetime, rows: list[DqResult]) -> dict[str, Any]:
    return {
        "suite": suite,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "failures": [
            {
                "expectation": r.expectation,
                "expectation_type": r.expectation_type,
                "unexpected_count": r.unexpected_count,
                "element_count": r.element_count,
                "observed_value": r.observed_value,
                "examples": r.examples,
            }
            for r in rows
        ],
    }


def _message(suite: str, asset: str, rows: list[DqResult]) -> str:
    names = ", ".join(f"{r.expectation} ({r.unexpected_count})" for r in rows)
    who = "an unknown asset" if asset == ANY_ASSET else asset
    return f"data quality: {suite} fails for {who}: {names}"


@dataclass
class SuiteAlerts:
    """The alert state of one suite: the latest record per asset (see the module docstring)."""

    suite: str
    last_window: datetime | None = None
    latest: dict[str, Alert] = field(default_factory=dict)

    @property
    def rule(self) -> str:
        return f"dq.{self.suite}"

    def on_window(self, start: datetime, end: datetime, results: Iterable[DqResult]) -> list[Alert]:
        """The alert records one validated window [start, end) changes."""
        if self.last_window is not None and start < self.last_window:
            return []
        self.last_window = start
        failing = failures_by_asset(results)
        out: list[Alert] = []
        for asset, rows in sorted(failing.items()):
            evidence = _evidence(self.suite, start, end, rows)
            prev = self.latest.get(asset)
            if prev is not None and prev.status == "active":
                if prev.evidence == evidence:
                    continue
                alert = self._revise(prev, start, evidence, _message(self.suite, asset, rows))
            elif prev is not None and prev.raised_ts == start:  # the same window fails again
                alert = self._revise(prev, start, evidence, _message(self.suite, asset, rows))
            else:
                alert = Alert(
                    alert_id=alert_id(self.rule, asset, start),
                    rule=self.rule,
                    kind=KIND,
                    asset=asset,
                    severity=SEVERITY,
                    status="active",
                    raised_ts=start,
                    updated_ts=start,
                    cleared_ts=None,
                    revision=0,
                    message=_message(self.suite, asset, rows),
                    evidence=evidence,
                )
            self.latest[asset] = alert
            out.append(alert)
        for asset, prev in sorted(self.latest.items()):
            if prev.status == "active" and asset not in failing:
                cleared = Alert(
                    alert_id=prev.alert_id,
                    rule=prev.rule,
                    kind=KIND,
                    asset=asset,
                    severity=prev.severity,
                    status="cleared",
                    raised_ts=prev.raised_ts,
                    updated_ts=start,
                    cleared_ts=start,
                    revision=prev.revision + 1,
                    message=f"data quality: {self.suite} passes again for {asset}",
                    evidence={**prev.evidence, "cleared_by_window": start.isoformat()},
                )
                self.latest[asset] = cleared
                out.append(cleared)
        # a cleared record is only needed while its window may be seen again
        self.latest = {
            a: x for a, x in self.latest.items() if x.status == "active" or x.raised_ts >= start
        }
        return out

    @staticmethod
    def _revise(prev: Alert, start: datetime, evidence: dict[str, Any], message: str) -> Alert:
        return Alert(
            alert_id=prev.alert_id,
            rule=prev.rule,
            kind=KIND,
            asset=prev.asset,
            severity=prev.severity,
            status="active",
            raised_ts=prev.raised_ts,
            updated_ts=max(start, prev.updated_ts),
            cleared_ts=None,
            revision=prev.revision + 1,
            message=message,
            evidence=evidence,
        )
