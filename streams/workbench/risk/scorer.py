"""`zhijian risk`: the institution risk score, published every day of event time.

One process follows ``zhijian.claims`` and ``zhijian.alerts`` whole (every partition, from the
beginning, no consumer group — like the console, it rebuilds from the topics when restarted) and
keeps the ledger of :mod:`streams.workbench.risk.ledger`. It reads the claims *behind the worker*: only up to
the offsets the worker's consumer group has committed, because the worker sends a claim's alerts
before it commits the claim — so when a day is scored, the alerts about its claims are on the alert
topic, read to its end, and the rule-hit rates do not depend on who was faster.

A day is complete once every claims partition that has data has moved past it. The scores of a
complete day go to ``zhijian.institution-scores`` (key the institution id; value as
:meth:`streams.workbench.risk.score.InstitutionScore.to_dict`, with ``"complete": true``); catching up over
history publishes the latest complete day only. When nothing new has come for ``idle_close_s``
the newest day is published too, marked ``"complete": false`` (a replay that has ended).

Metrics carry no institution label: a histogram of the scores published, the number of institutions
per grade, the day last published, records read.
"""
from __future__ import annotations

import logging
import time
from datetime import date, datetime, timezone
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from models.contracts.records import InvalidRecord, decode, validate
from streams.workbench.risk.ledger import InstitutionLedger
from streams.workbench.risk.score import GRADES, RiskSettings, score_institutions

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
SCORES = Histogram("zhijian_institution_risk_scores", "Risk scores published (one observation per institution and "
                   "day; no institution label)", buckets=(0, 1, 3, 6, 10, 15, 20, 30, 45), registry=REGISTRY)
GRADED = Gauge("zhijian_institutions_graded", "Institutions per risk grade on the day last published", ["grade"],
               registry=REGISTRY)
PUBLISHED = Counter("zhijian_institution_scores_published", "Institution score records published", registry=REGISTRY)
DAY = Gauge("zhijian_risk_score_day", "The day last published, as epoch seconds (its start, UTC)", registry=REGISTRY)
READ = Counter("zhijian_risk_records", "Records read by the risk scorer", ["topic_kind"], registry=REGISTRY)
INSTITUTIONS = Gauge("zhijian_risk_institutions", "Institutions in the ledger's window", registry=REGISTRY)


class RiskScorer:
    """The ledger and what has been published; feed it claims and alerts, ask it which days to publish."""

    def __init__(self, settings: RiskSettings, pseudonymize: Any) -> None:
        self.settings = settings
        self.ledger = InstitutionLedger(settings.window_days)
        self.pseudonymize = pseudonymize
        self.alert_ids: dict[str, str] = {}  # alert id → day (the first record of an id counts)
        self.newest: dict[int, str] = {}  # claims partition → newest day read
        self.published: str = ""  # the last complete day published

    def claim_record(self, partition: int, raw: bytes | None) -> int:
        """One record of the claims topic (an event or an envelope); returns the claims learned."""
        try:
            events = decode(raw)
        except InvalidRecord:
            return 0  # the worker dead-letters it
        learned = 0
        for event in events:
            try:
                event = validate("claim", event)
            except InvalidRecord:
                continue
            event["patient"] = self.pseudonymize(event.pop("patient_id"))
            self.ledger.learn_claim(event)
            day = event["event_time"][:10]
            if day > self.newest.get(partition, ""):
                self.newest[partition] = day
            learned += 1
        return learned

    def alert_record(self, raw: bytes | None) -> None:
        try:
            alert = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return
        if not isinstance(alert, dict) or alert.get("alert_id") in self.alert_ids or "event_time" not in alert:
            return
        self.alert_ids[alert["alert_id"]] = alert["event_time"][:10]
        self.ledger.learn_alert(alert)

    def complete_day(self) -> str | None:
        """The newest day every claims partition with data has moved past (None: none yet)."""
        if not self.newest:
            return None
        oldest_front = min(self.newest.values())
        return date.fromordinal(date.fromisoformat(oldest_front).toordinal() - 1).isoformat()

    def scores(self, day: str, complete: bool) -> list[dict[str, Any]]:
        out = []
        for s in score_institutions(self.ledger, day, self.settings):
            record = s.to_dict()
            record["complete"] = complete
            out.append(record)
        return out

    def forget_before(self, day: str) -> None:
        self.ledger.expire(day)
        start = date.fromordinal(date.fromisoformat(day).toordinal() - self.settings.window_days).isoformat()
        for alert_id in [a for a, d in self.alert_ids.items() if d < start]:
            del self.alert_ids[alert_id]


def observe(records: list[dict[str, Any]], day: str) -> None:
    counts = {name: 0 for name, _ in GRADES}
    for r in records:
        SCORES.observe(r["score"])
        counts[r["grade"]] += 1
    for grade, n in counts.items():
        GRADED.labels(grade).set(n)
    PUBLISHED.inc(len(records))
    DAY.set(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp())


def committed_offsets(admin: Any, group: str, topic: str) -> dict[int, int]:
    """Partition → the offset the worker's group has committed on ``topic`` (0 when none)."""
    from kafka.errors import KafkaError

    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except KafkaError:
        return {}  # no coordinator yet: nothing committed
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def run(conn: Any, claims_topic: str, alerts_topic: str, scores_topic: str, worker_group: str,
        settings: RiskSettings, pseudonymize: Any, metrics_port: int = 0, idle_close_s: float = 60.0,
        follow_worker: bool = True, stop: Any = None) -> None:
    """Follow the topics and publish (runs until ``stop()`` is true, or forever)."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    if metrics_port:
        start_http_server(metrics_port, registry=REGISTRY)
    scorer = RiskScorer(settings, pseudonymize)
    claims = KafkaConsumer(**conn.kafka_python(), group_id=None, enable_auto_commit=False)
    alerts = KafkaConsumer(**conn.kafka_python(), group_id=None, enable_auto_commit=False)
    admin = KafkaAdminClient(**conn.kafka_python())
    producer = KafkaProducer(**conn.kafka_python(), linger_ms=50)
    try:
        claim_tps = _assign(claims, claims_topic)
        alert_tps = _assign(alerts, alerts_topic)
        last_new = time.monotonic()
        idle_published = ""
        while stop is None or not stop():
            limits = committed_offsets(admin, worker_group, claims_topic) if follow_worker else None
            learned = 0
            for tp, records in claims.poll(timeout_ms=500, max_records=5000).items():
                limit = None if limits is None else limits.get(tp.partition, 0)
                for r in records:
                    if limit is not None and r.offset >= limit:
                        claims.seek(tp, r.offset)  # not judged by the worker yet: read it again later
                        break
                    learned += scorer.claim_record(tp.partition, r.value)
                    READ.labels("claims").inc()
            alert_ends = alerts.end_offsets(alert_tps)
            while any(alerts.position(tp) < alert_ends[tp] for tp in alert_tps):
                for records in alerts.poll(timeout_ms=500, max_records=5000).values():
                    for r in records:
                        scorer.alert_record(r.value)
                        READ.labels("alerts").inc()
            INSTITUTIONS.set(len(scorer.ledger.days))
            if learned:
                last_new = time.monotonic()
            day = scorer.complete_day()
            if day is not None and day > scorer.published:
                _publish(producer, scores_topic, scorer.scores(day, True), day)
                scorer.published = day
                scorer.forget_before(day)
            newest = max(scorer.newest.values(), default="")
            if (newest and newest > scorer.published and newest != idle_published
                    and time.monotonic() - last_new >= idle_close_s and _caught_up(claims, claim_tps, limits)):
                _publish(producer, scores_topic, scorer.scores(newest, False), newest)
                idle_published = newest
    finally:
        producer.close()
        admin.close()
        claims.close()
        alerts.close()


def _assign(consumer: Any, topic: str) -> list[Any]:
    from kafka import TopicPartition

    from connectors.errors import ZhijianError

    deadline = time.monotonic() + 30
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            raise ZhijianError(f"topic {topic} does not exist; create the topics with `zhijian topics`")
        time.sleep(0.5)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    return tps


def _caught_up(consumer: Any, tps: list[Any], limits: dict[int, int] | None) -> bool:
    ends = consumer.end_offsets(tps)
    return all(consumer.position(tp) >= (ends[tp] if limits is None else min(ends[tp], limits.get(tp.partition, 0)))
               for tp in tps)


def _publish(producer: Any, topic: str, records: list[dict[str, Any]], day: str) -> None:
    for r in records:
        producer.send(topic, key=r["institution_id"].encode(), value=orjson.dumps(r))
    producer.flush()
    observe(records, day)
    log.info("published the risk scores of %d institutions for %s", len(records), day)
