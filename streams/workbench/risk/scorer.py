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

import asyncio
import logging
import time
from datetime import date, datetime, timezone
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from connectors.kafka.follower import TopicFollower
from models.contracts.records import InvalidRecord, decode, validate
from streams.workbench.risk.learned import LearnedScore, cross_validate, enough, features
from streams.workbench.risk.ledger import InstitutionLedger
from streams.workbench.risk.score import GRADES, RiskSettings, score_institutions
from streams.workbench.risk.verdicts import Labels

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
LABELS = Gauge("zhijian_risk_labelled_institutions", "Institutions with an audit finding or verdict", ["verdict"],
               registry=REGISTRY)
LEARNED_AUC = Gauge("zhijian_risk_learned_cv_roc_auc", "Cross-validated ROC-AUC of the learned score on the labelled "
                    "institutions (5 folds; NaN until enough labels)", registry=REGISTRY)


class RiskScorer:
    """The ledger and what has been published; feed it claims and alerts, ask it which days to publish."""

    def __init__(self, settings: RiskSettings, pseudonymize: Any) -> None:
        self.settings = settings
        self.ledger = InstitutionLedger(settings.window_days)
        self.pseudonymize = pseudonymize
        self.alert_ids: dict[str, tuple[str, bool]] = {}  # alert id → (its day, counted: not withdrawn)
        self.newest: dict[int, str] = {}  # claims partition → newest day read
        self.published: str = ""  # the last complete day published
        self.verdicts = Labels()  # audit findings and closed cases: the learned score's labels
        self.validation: dict[str, Any] | None = None  # the learned score's last cross-validation

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
        if not isinstance(alert, dict) or "event_time" not in alert or not alert.get("alert_id"):
            return
        counts = alert.get("status") != "withdrawn"
        kept = self.alert_ids.get(alert["alert_id"])
        if kept is None:
            if counts:  # (withdrawn before it was read: nothing to count)
                self.alert_ids[alert["alert_id"]] = (alert["event_time"][:10], True)
                self.ledger.learn_alert(alert)
        elif counts != kept[1]:  # withdrawn by a correction, or its grounds back with a later version
            self.alert_ids[alert["alert_id"]] = (kept[0], counts)
            self.ledger.learn_alert({**alert, "event_time": kept[0]}, 1 if counts else -1)

    def complete_day(self) -> str | None:
        """The newest day every claims partition with data has moved past (None: none yet)."""
        if not self.newest:
            return None
        oldest_front = min(self.newest.values())
        return date.fromordinal(date.fromisoformat(oldest_front).toordinal() - 1).isoformat()

    def verdict_record(self, raw: bytes | None) -> None:
        try:
            self.verdicts.apply(orjson.loads(raw) if raw else None)
        except orjson.JSONDecodeError:
            return

    def scores(self, day: str, complete: bool) -> list[dict[str, Any]]:
        out = []
        for s in score_institutions(self.ledger, day, self.settings):
            record = s.to_dict()
            record["complete"] = complete
            out.append(record)
        self.learn(out)
        return out

    def learn(self, records: list[dict[str, Any]]) -> None:
        """With enough labelled institutions among those scored: ``learned_score`` (0–1) in every record, from a
        model trained on them (:mod:`streams.workbench.risk.learned`), and each labelled record's ``verdict``."""
        labels = self.verdicts.labels()
        for verdict in (True, False):
            LABELS.labels("fraud_or_violation" if verdict else "clean").set(sum(v is verdict for v in labels.values()))
        rows = {r["institution_id"]: features(r) for r in records}
        known = {i: v for i, v in labels.items() if i in rows}
        if not enough(known, self.settings.min_labels, self.settings.min_per_class):
            LEARNED_AUC.set(float("nan"))
            return
        model = LearnedScore.fit(rows, known)
        learned = model.predict(rows)
        for r in records:
            r["learned_score"] = round(learned[r["institution_id"]], 4)
            if r["institution_id"] in known:
                r["labelled"] = "fraud_or_violation" if known[r["institution_id"]] else "clean"
        self.validation = cross_validate(rows, known)
        LEARNED_AUC.set(self.validation["roc_auc"] if self.validation["roc_auc"] is not None else float("nan"))
        top = ", ".join(f"{k} {v:+.2f}" for k, v in list(model.weights().items())[:4])
        log.info("learned score from %d labelled institutions (%d positive): cross-validated ROC-AUC %s, precision@%d "
                 "%s; strongest features %s", self.validation["labels"], self.validation["positives"],
                 _fmt(self.validation["roc_auc"]), self.validation["k"], _fmt(self.validation["precision_at_k"]), top)

    def forget_before(self, day: str) -> None:
        self.ledger.expire(day)
        start = date.fromordinal(date.fromisoformat(day).toordinal() - self.settings.window_days).isoformat()
        for alert_id in [a for a, (d, _) in self.alert_ids.items() if d < start]:
            del self.alert_ids[alert_id]


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def observe(records: list[dict[str, Any]], day: str) -> None:
    counts = {name: 0 for name, _ in GRADES}
    for r in records:
        SCORES.observe(r["score"])
        counts[r["grade"]] += 1
    for grade, n in counts.items():
        GRADED.labels(grade).set(n)
    PUBLISHED.inc(len(records))
    DAY.set(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp())


async def committed_offsets(admin: Any, group: str, topic: str) -> dict[int, int]:
    """Partition → the offset the worker's group has committed on ``topic`` (0 when none)."""

    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:
        return {}  # no coordinator yet: nothing committed
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def run(conn: Any, claims_topic: str, alerts_topic: str, scores_topic: str, worker_group: str,
        settings: RiskSettings, pseudonymize: Any, metrics_port: int = 0, idle_close_s: float = 60.0,
        follow_worker: bool = True, stop: Any = None, verdicts_topic: str | None = None,
        metrics_host: str = "127.0.0.1") -> None:
    """Follow the topics and publish (runs until ``stop()`` is true, or forever). The metrics endpoint listens on
    ``metrics_host`` (the worker's setting, ``ZHIJIAN_METRICS_HOST``: 0.0.0.0 in a container)."""
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_host, registry=REGISTRY)
    publisher = Publisher(conn, claims_topic, alerts_topic, scores_topic, worker_group, settings, pseudonymize,
                          idle_close_s, follow_worker)
    publisher.verdicts_topic = verdicts_topic
    asyncio.run(publisher.run(stop))


class Publisher:
    """The scorer on the topics: claims read behind the worker, the alerts read to their end before each day is
    scored, the scores published."""

    def __init__(self, conn: Any, claims_topic: str, alerts_topic: str, scores_topic: str, worker_group: str,
                 settings: RiskSettings, pseudonymize: Any, idle_close_s: float, follow_worker: bool) -> None:
        self.conn = conn
        self.topics = (claims_topic, alerts_topic, scores_topic)
        self.group = worker_group
        self.scorer = RiskScorer(settings, pseudonymize)
        self.idle_close_s = idle_close_s
        self.follow_worker = follow_worker
        self.verdicts_topic: str | None = None  # audit findings (zhijian.institution-verdicts), read whole

    async def run(self, stop: Any = None) -> None:
        claims_topic, alerts_topic, _ = self.topics
        admin = AIOKafkaAdminClient(**self.conn.aiokafka())
        producer = AIOKafkaProducer(**self.conn.aiokafka(), linger_ms=50)
        await admin.start()
        await producer.start()
        try:
            async with TopicFollower(self.conn, [claims_topic]) as claims, \
                    TopicFollower(self.conn, [alerts_topic]) as alerts:
                if self.verdicts_topic:
                    async with TopicFollower(self.conn, [self.verdicts_topic]) as verdicts:
                        self.verdict_follower = verdicts
                        await self._loop(claims, alerts, admin, producer, stop)
                else:
                    await self._loop(claims, alerts, admin, producer, stop)
        finally:
            await producer.stop()
            await admin.close()

    async def _loop(self, claims: Any, alerts: Any, admin: Any, producer: Any, stop: Any) -> None:
        scorer = self.scorer
        last_new = time.monotonic()
        idle_published = ""
        while stop is None or not stop():
            limits = await committed_offsets(admin, self.group, self.topics[0]) if self.follow_worker else None
            learned = await self._read_claims(claims, limits)
            await self._read_alerts(alerts)
            await self._read_verdicts()
            INSTITUTIONS.set(len(scorer.ledger.days))
            if learned:
                last_new = time.monotonic()
            day = scorer.complete_day()
            if day is not None and day > scorer.published:
                await _publish(producer, self.topics[2], scorer.scores(day, True), day)
                scorer.published = day
                scorer.forget_before(day)
            newest = max(scorer.newest.values(), default="")
            if (newest and newest > scorer.published and newest != idle_published
                    and time.monotonic() - last_new >= self.idle_close_s and await _caught_up(claims, limits)):
                await _publish(producer, self.topics[2], scorer.scores(newest, False), newest)
                idle_published = newest

    async def _read_claims(self, claims: Any, limits: dict[int, int] | None) -> int:
        """One fetch of claims, none beyond the worker's committed offsets (those are read again later)."""
        learned = 0
        fetched = await claims.consumer.getmany(timeout_ms=500, max_records=5000)
        for tp, records in fetched.items():
            limit = None if limits is None else limits.get(tp.partition, 0)
            for r in records:
                if limit is not None and r.offset >= limit:
                    claims.consumer.seek(tp, r.offset)  # not judged by the worker yet: read it again later
                    break
                learned += self.scorer.claim_record(tp.partition, r.value)
                READ.labels("claims").inc()
        return learned

    async def _read_verdicts(self) -> None:
        """Whatever audit findings have come (a verdict applies from the next scores published)."""
        follower = getattr(self, "verdict_follower", None)
        if follower is None:
            return
        for records in (await follower.consumer.getmany(timeout_ms=0, max_records=5000)).values():
            for r in records:
                self.scorer.verdict_record(r.value)
                READ.labels("verdicts").inc()

    async def _read_alerts(self, alerts: Any) -> None:
        """The alert topic read to its end now: the alerts about every claim the worker committed."""
        ends = await alerts.consumer.end_offsets(alerts.tps)
        while any([await alerts.consumer.position(tp) < ends[tp] for tp in alerts.tps]):
            for records in (await alerts.consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for r in records:
                    self.scorer.alert_record(r.value)
                    READ.labels("alerts").inc()


async def _caught_up(claims: Any, limits: dict[int, int] | None) -> bool:
    ends = await claims.consumer.end_offsets(claims.tps)
    return all([await claims.consumer.position(tp) >= (ends[tp] if limits is None
                                                         else min(ends[tp], limits.get(tp.partition, 0)))
                for tp in claims.tps])


async def _publish(producer: Any, topic: str, records: list[dict[str, Any]], day: str) -> None:
    for r in records:
        await producer.send(topic, key=r["institution_id"].encode(), value=orjson.dumps(r))
    await producer.flush()
    observe(records, day)
    log.info("published the risk scores of %d institutions for %s", len(records), day)
