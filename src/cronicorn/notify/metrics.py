"""Prometheus counters of notification delivery (served by /metrics with the others)."""

from __future__ import annotations

from prometheus_client import Counter

SENDS = Counter(
    "cronicorn_notify_sends_total",
    "Messages sent to channels (one may group several events), by outcome",
    ["outcome"],  # ok | retry | failed
)
EVENTS = Counter(
    "cronicorn_notify_events_total",
    "Events delivered or given up, by event kind and outcome",
    ["event", "outcome"],  # outcome: sent | failed
)
