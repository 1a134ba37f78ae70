"""The topics zhijian reads and writes, and the stream each input topic carries."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from connectors.errors import ZhijianError


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    stream: str | None = None  # the event stream an input topic carries
    description: str = ""
    compacted: bool = False  # cleanup.policy=compact: a changelog, the latest value per key kept
    reference: str | None = None  # the reference table a compacted input topic carries (streams/worker/reference.py)


def changelog_specs(app_id: str, partitions: int, groups: list[str] = ()) -> list[TopicSpec]:
    """The worker's own topics: a state changelog per stream and per re-keyed group (``claim-by-doctor``),
    partitioned like the topic it follows (state of partition p is written to partition p), and a
    repartition topic per group. Named after the app id, like Faust's own topics."""
    return ([TopicSpec(changelog_name(app_id, name), partitions, None,
                       f"checkpointed detector state of {name}", compacted=True)
             for name in (*KEY_FIELD, *groups)]
            + [TopicSpec(repartition_name(app_id, group), partitions, None,
                         f"events re-keyed for the detectors of {group}") for group in groups])


def changelog_name(app_id: str, name: str) -> str:
    return f"{app_id}-{name}-state-changelog"


def repartition_name(app_id: str, group: str) -> str:
    return f"{app_id}-{group}-repartition"


def topic_specs(prefix: str = "zhijian.", input_partitions: int = 4, alert_partitions: int = 4) -> list[TopicSpec]:
    p = prefix
    return [
        TopicSpec(f"{p}prescriptions", input_partitions, "prescription", "处方 prescriptions, keyed by patient"),
        TopicSpec(f"{p}claims", input_partitions, "claim", "医保结算 insurance claim settlements, keyed by patient"),
        TopicSpec(f"{p}waste", input_partitions, "waste", "医疗废物 manifest events, keyed by manifest id"),
        TopicSpec(f"{p}telemetry", input_partitions, "telemetry", "疫苗冷链 temperature readings, keyed by device id"),
        TopicSpec(f"{p}inventory", 1, None, "疫苗库存 the last stock count of each cold-chain device (lots), keyed by "
                  "device id; compacted, read whole by every worker", compacted=True, reference="inventory"),
        TopicSpec(f"{p}beneficiaries", input_partitions, None, "参保人 each insured person's birth date, sex and date "
                  "of death, keyed by patient; compacted, read whole by every worker", compacted=True,
                  reference="beneficiary"),
        TopicSpec(f"{p}watchlist", 1, None, "重点监管名单 / 黑名单 watch-listed entities (stricter limits) and excluded "
                  "providers, keyed by entity kind:id; compacted, read whole by every worker, edited in the workbench",
                  compacted=True, reference="watchlist"),
        TopicSpec(f"{p}alerts", alert_partitions, None, "预警 alerts, keyed by entity kind:id"),
        TopicSpec(f"{p}deadletter", 1, None, "records refused by validation, unchanged, with error headers"),
        TopicSpec(f"{p}reports", 1, None, "报表 what the monthly rules publish of every institution, alert or not "
                  "(双排名 rankings, antimicrobial stewardship rates), keyed by kind:institution:period; compacted",
                  compacted=True),
        TopicSpec(f"{p}institution-scores", 1, None, "机构风险评分 each institution's daily risk score, grade and the "
                  "rates behind it, keyed by institution id (zhijian risk)"),
        TopicSpec(f"{p}institution-verdicts", 1, None, "稽查结论 audit findings per institution (飞行检查, 专项检查: "
                  "zhijian verdicts import; and cases the workbench closed as fraud or violation): institution_id, "
                  "verdict fraud|violation|clean, decided_on, source; keyed by institution id"),
        TopicSpec(f"{p}case-events", 1, None, "案件处置 every change of a workbench case (status, verdict, comment, "
                  "who, when), keyed by case id"),
    ]


async def partitions_of(consumer: Any, topic: str, timeout_s: float = 30.0) -> list[int]:
    """The partitions of ``topic`` as a started aiokafka consumer learns them, waiting for its metadata (a
    topic created a moment ago); raises :class:`ZhijianError` when the topic does not exist."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return sorted(found)
        if asyncio.get_running_loop().time() > deadline:
            raise ZhijianError(f"topic {topic} does not exist; create the topics with `zhijian topics`")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.5)


#: Which field of an event is its partition key (so one entity's events share a partition).
KEY_FIELD = {"prescription": "patient_id", "claim": "patient_id", "waste": "manifest_id", "telemetry": "device_id"}
#: Which field of a reference record is its key (one record per key on a compacted topic).
REFERENCE_KEY_FIELD = {"inventory": "device_id", "beneficiary": "patient_id", "watchlist": "entity_kind:entity_id"}


def reference_key(table: str, value: dict) -> str:
    """The key a reference record must carry: its id field, or for the watch lists ``entity_kind:entity_id``."""
    if table == "watchlist":
        return f"{value['entity_kind']}:{value['entity_id']}"
    return value[REFERENCE_KEY_FIELD[table]]
