"""Prometheus metrics of the worker, in base units with bounded labels.

Labels are only stream names, refusal reasons, detector names and severities: never an
institution, a prescriber or a patient.
"""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

disable_created_metrics()  # the *_created series double the exposition for no use here

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter("zhijian_events", "Valid events processed", ["stream"], registry=REGISTRY)
RECORDS = Counter("zhijian_records", "Kafka records consumed (an envelope counts once)", ["stream"],
                  registry=REGISTRY)
REPLAYED = Counter("zhijian_records_replayed", "Records read again after a restart or a rebalance that the restored "
                   "state had already applied (skipped)", ["stream"], registry=REGISTRY)
FORWARDED = Counter("zhijian_forwarded_events", "Events received on a repartition topic, by re-keyed group "
                    "(claim-by-doctor …)", ["group"], registry=REGISTRY)
INVALID = Counter("zhijian_invalid_records", "Records or events refused and sent to the dead-letter topic",
                  ["stream", "reason"], registry=REGISTRY)
ALERTS = Counter("zhijian_alerts", "Alerts raised (a closing update of an open alert is not counted, nor an alert "
                 "raised again under an id counted lately)", ["stream", "detector", "severity", "tier"],
                 registry=REGISTRY)
REPORTS = Counter("zhijian_reports", "Period reports published to zhijian.reports (a period sent again after a "
                  "restart counts again; the topic keeps the last)", ["kind"], registry=REGISTRY)
ALERTS_REPEATED = Counter("zhijian_alerts_repeated", "Alert records sent again under an id already counted (a "
                          "repeated input, a replay after a restart)", ["stream"], registry=REGISTRY)
EVENTS_READ = Counter("zhijian_events_read", "Events found in the records read (a record that cannot be decoded "
                      "counts one): always events judged + events refused", ["stream"], registry=REGISTRY)
EVENTS_REFUSED = Counter("zhijian_events_refused", "Events refused by the contract and dead-lettered (detector "
                         "errors are not refusals: the other detectors judged the event)", ["stream"],
                         registry=REGISTRY)
ACCOUNTING_GAP = Gauge("zhijian_accounting_gap", "Events read − (judged + refused), checked every 30 s: 0 unless "
                       "something was lost", ["stream"], registry=REGISTRY)
EVENTS_HELD = Counter("zhijian_events_held", "Events judged but not allowed to move their partition's event-time "
                      "clock: an old event far ahead of everything its partition showed, until later ones confirm "
                      "the jump (a wrong date in a replayed file stays held)", ["stream"], registry=REGISTRY)
DEAD_REFERENCES = Counter("zhijian_deadletter_references", "Dead letters too large for the topic, sent as a "
                          "reference to the source record instead of its value", ["stream"], registry=REGISTRY)
AMOUNT = Counter("zhijian_alert_amount_yuan", "Money at stake named by the alerts raised (duplicate amount, "
                 "overcharge, or the claims' total), in yuan", ["stream", "detector"], registry=REGISTRY)
OPEN_ALERTS = Gauge("zhijian_open_alerts", "Alerts with a lifecycle (excursions, silent devices) open now",
                    ["detector"], registry=REGISTRY)
OLDEST_OPEN = Gauge("zhijian_oldest_open_alert_age_seconds", "Event-time age of the oldest open alert with a "
                    "lifecycle, against the newest event time of its stream (0 when none is open)", ["detector"],
                    registry=REGISTRY)
KINDS = Counter("zhijian_events_by_kind", "Valid events by kind: visit type, claim type, manifest event type, "
                "device kind (values of the contracts' enumerations)", ["stream", "kind"], registry=REGISTRY)
REGIONS = Counter("zhijian_region_events", "Valid events by administrative region (county/district code); "
                  "past the first 2,000 codes a worker has seen, counted as 'other'", ["stream", "region"],
                  registry=REGISTRY)
LAG = Gauge("zhijian_consumer_lag_records", "Records of an owned input partition not yet processed: the high "
            "watermark minus the next offset this worker will process", ["topic", "partition"], registry=REGISTRY)
LATENCY = Histogram(
    "zhijian_processing_latency_seconds",
    "From the input record's Kafka timestamp to the end of its processing by the worker",
    ["stream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
ASSIGNED = Gauge("zhijian_assigned_partitions", "Partitions of each input topic this worker owns since the last "
                 "rebalance", ["topic"], registry=REGISTRY)
REBALANCES = Counter("zhijian_rebalances", "Partition assignments this worker received (one per rebalance)",
                     registry=REGISTRY)
STATE_KEYS = Gauge("zhijian_state_keys", "Keys held in the keyed detectors' state stores of this worker",
                   ["stream"], registry=REGISTRY)
CHECKPOINT_RECORDS = Counter("zhijian_checkpoint_records", "State changelog records written at checkpoints",
                             registry=REGISTRY)
CHECKPOINT_SECONDS = Histogram("zhijian_checkpoint_seconds", "Time to encode, write and have acknowledged one "
                               "checkpoint's state changelog records (the agents run meanwhile)",
                               buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=REGISTRY)
CHECKPOINT_PAUSE = Histogram("zhijian_checkpoint_pause_seconds", "Time a checkpoint held the agents (its capture)",
                             buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5), registry=REGISTRY)
CHECKPOINT_LONGEST = Gauge("zhijian_checkpoint_longest_seconds", "The longest checkpoint write since the start",
                           registry=REGISTRY)
CHECKPOINT_RETRIES = Counter("zhijian_checkpoint_retries", "Checkpoint transactions the broker refused (timed out, "
                             "fenced, a coordinator or leader lost) and the worker wrote again with a fresh producer",
                             registry=REGISTRY)
STATE_GAPS = Counter("zhijian_state_gaps", "Partitions whose restored state had applied fewer records than the group "
                     "had committed: the records between were never applied to it (a checkpoint written late by a "
                     "worker the group had dropped); each is also an ERROR line in the log", ["stream"],
                     registry=REGISTRY)
CHECKPOINT_LONGEST_PAUSE = Gauge("zhijian_checkpoint_longest_pause_seconds", "The longest time a capture held the "
                                 "agents since the start", registry=REGISTRY)
RESTORE_SECONDS = Gauge("zhijian_state_restore_seconds", "Time the last assignment took to restore state from "
                        "the changelogs", registry=REGISTRY)
RESTORE_SECONDS_ALL = Counter("zhijian_state_restore_seconds_spent", "Time spent restoring state from the "
                              "changelogs, all restores together", registry=REGISTRY)
RESTORED_RECORDS = Counter("zhijian_state_restored_records", "Changelog records read to restore state",
                           registry=REGISTRY)
REFERENCE_RECORDS = Counter("zhijian_reference_records", "Records of the reference topics read (inventory), by "
                            "table and outcome (applied, refused)", ["table", "outcome"], registry=REGISTRY)
REFERENCE_KEYS = Gauge("zhijian_reference_keys", "Keys of each reference table this worker holds (devices with stock)",
                       ["table"], registry=REGISTRY)
BACKPRESSURE = Counter("zhijian_agent_backpressure_seconds", "Time the agents waited between two records for a "
                       "checkpoint's or a forward's sends to end (back-pressure; agents waiting together each count)",
                       registry=REGISTRY)
HEAP_RELEASE_SECONDS = Histogram("zhijian_heap_release_seconds", "Time one hand-back of the C heap's free pages took "
                                 "(malloc_trim; streams.worker.heap)", buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
                                 registry=REGISTRY)
HEAP_RELEASE_LONGEST = Gauge("zhijian_heap_release_longest_seconds", "The longest hand-back of the C heap's free pages "
                             "since the start (it holds the worker's loop)", registry=REGISTRY)
HEAP_RELEASED = Counter("zhijian_heap_released_bytes", "Resident memory the C heap handed back to the system",
                        registry=REGISTRY)
UP = Gauge("zhijian_worker_up", "1 while the worker's agents are running", registry=REGISTRY)


def serve(host: str, port: int) -> None:
    """Serve /metrics on host:port in a background thread (port 0 disables it)."""
    if port:
        start_http_server(port, addr=host, registry=REGISTRY)


def _raise_to(gauge: Gauge, value: float) -> None:
    """A "longest since the start" gauge: raised to ``value`` if that is longer."""
    if value > gauge._value.get():
        gauge.set(value)


def heap_released(seconds: float, freed: int) -> None:
    """One hand-back of the C heap's free pages (:func:`streams.worker.heap.release`)."""
    HEAP_RELEASE_SECONDS.observe(seconds)
    _raise_to(HEAP_RELEASE_LONGEST, seconds)
    HEAP_RELEASED.inc(freed)


def checkpointed(report: Any) -> None:
    """A checkpoint's or a restore's figures (:class:`streams.worker.checkpoint.Report`)."""
    if report.kind == "checkpoint_retried":
        CHECKPOINT_RETRIES.inc()
        return
    if report.kind == "checkpoint":
        CHECKPOINT_RECORDS.inc(report.records)
        CHECKPOINT_SECONDS.observe(report.seconds)
        CHECKPOINT_PAUSE.observe(report.pause)
        _raise_to(CHECKPOINT_LONGEST, report.seconds)
        _raise_to(CHECKPOINT_LONGEST_PAUSE, report.pause)
    else:
        RESTORE_SECONDS.set(report.seconds)
        RESTORE_SECONDS_ALL.inc(report.seconds)
        RESTORED_RECORDS.inc(report.records)
    for name, keys in (report.keys or {}).items():
        STATE_KEYS.labels(name).set(keys)
