"""The topics zhijian reads and writes, and the stream each input topic carries."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    stream: str | None = None  # the event stream an input topic carries
    description: str = ""
    compacted: bool = False  # cleanup.policy=compact: a changelog, the latest value per key kept


def changelog_specs(app_id: str, partitions: int) -> list[TopicSpec]:
    """The worker's state changelogs, one per stream, partitioned like its input topic (state of input
    partition p is written to partition p). Named after the app id, like Faust's own topics."""
    return [TopicSpec(changelog_name(app_id, stream), partitions, None,
                      f"checkpointed detector state of the {stream} stream", compacted=True)
            for stream in KEY_FIELD]


def changelog_name(app_id: str, stream: str) -> str:
    return f"{app_id}-{stream}-state-changelog"


def topic_specs(prefix: str = "zhijian.", input_partitions: int = 4, alert_partitions: int = 4) -> list[TopicSpec]:
    p = prefix
    return [
        TopicSpec(f"{p}prescriptions", input_partitions, "prescription", "处方 prescriptions, keyed by patient"),
        TopicSpec(f"{p}claims", input_partitions, "claim", "医保结算 insurance claim settlements, keyed by patient"),
        TopicSpec(f"{p}waste", input_partitions, "waste", "医疗废物 manifest events, keyed by manifest id"),
        TopicSpec(f"{p}telemetry", input_partitions, "telemetry", "疫苗冷链 temperature readings, keyed by device id"),
        TopicSpec(f"{p}alerts", alert_partitions, None, "预警 alerts, keyed by entity kind:id"),
        TopicSpec(f"{p}deadletter", 1, None, "records refused by validation, unchanged, with error headers"),
    ]


#: Which field of an event is its partition key (so one entity's events share a partition).
KEY_FIELD = {"prescription": "patient_id", "claim": "patient_id", "waste": "manifest_id", "telemetry": "device_id"}
