"""Reference data every worker follows: compacted topics read whole into tables the detectors look up.

``zhijian.inventory`` (key: device id) holds the last stock count of each cold-chain device; the
excursion rule names the lots at risk from it (:func:`models.rules.coldchain.excursion.affected_stock`).
``zhijian.watchlist`` (key: ``entity_kind:entity_id``) holds the watch lists 重点监管名单 and the excluded
providers 黑名单 the workbench edits (:mod:`models.rules.watchlist`). ``zhijian.beneficiaries`` (key: patient id) holds each insured person's birth date, sex and date of
death; the table keeps them under the patient's pseudonym, as the claims carry it, and only those
three facts. Every worker reads every partition from the beginning and then follows the topic — no
consumer group, no offsets committed: a restarted worker reads it again, as Kafka Streams does a
global table, and like a global table the worker judges no input before it has read every reference
topic to the end it had when the worker started (:func:`follow` sets ``ready``). The stock enriches
alerts; beneficiary facts decide the claim rules on death, age and sex — a claim is judged against the
facts known when it is judged, so publish the beneficiaries before the claims they explain.

A record that is not a valid snapshot goes to the dead-letter topic with its reason, and is
counted, like any other input; a tombstone (or an empty ``lots`` list) clears the device's stock.

>>> tables = ReferenceTables(pseudonymize=lambda pid: "P:" + pid)
>>> tables.apply("inventory", b"FR-1", b'{"schema_version": 1, "device_id": "FR-1", '
...              b'"event_time": "2026-11-24T08:00:00+08:00", "lots": [{"lot": "A", "product_code": "P", "doses": 5}]}')
>>> tables["inventory"]["FR-1"]["lots"][0]["doses"]
5
>>> tables.apply("inventory", b"FR-1", None); tables["inventory"]
{}
>>> tables.apply("beneficiary", b"110101195001011234", b'{"schema_version": 1, "patient_id": "110101195001011234", '
...              b'"event_time": "2026-11-01T00:00:00+08:00", "birth_date": "1950-01-01", "sex": "F", "region": "110101"}')
>>> tables["beneficiary"]
{'P:110101195001011234': {'birth_date': '1950-01-01', 'sex': 'F'}}
>>> try:
...     tables.apply("inventory", b"FR-2", b'{"schema_version": 1, "device_id": "FR-3", '
...                  b'"event_time": "2026-11-24T08:00:00+08:00", "lots": []}')
... except InvalidRecord as e:
...     print(e.reason, "-", e.detail)
invalid_value - the record's key FR-2 is not its device_id FR-3
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from connectors.kafka.follower import TopicFollower
from connectors.kafka.topics import REFERENCE_KEY_FIELD, reference_key
from models.contracts.records import REFERENCES, InvalidRecord, decode, validate

log = logging.getLogger(__name__)

#: the beneficiary facts a table keeps (the claim rules need no more)
BENEFICIARY_FACTS = ("birth_date", "sex", "death_date")
#: what the workers keep of a watch-list entry (its basis and author stay on the topic)
WATCH_FIELDS = ("list", "factor", "until", "name")


class ReferenceTables(dict):
    """table → key → the latest valid value; beneficiaries under the patient's pseudonym."""

    def __init__(self, pseudonymize: Callable[[str], str] | None = None) -> None:
        super().__init__({name: {} for name in REFERENCES})
        self.pseudonymize = pseudonymize or (lambda pid: pid)

    def _key(self, table: str, k: str) -> str:
        return self.pseudonymize(k) if table == "beneficiary" else k

    def apply(self, table: str, key: bytes | None, raw: bytes | None) -> None:
        """Apply one record of a reference topic; raises :class:`InvalidRecord` for one to dead-letter."""
        if key is None:
            raise InvalidRecord("missing_field", f"a {table} record needs a key ({REFERENCE_KEY_FIELD[table]})")
        k = key.decode("utf-8", "replace")
        if raw is None:
            self[table].pop(self._key(table, k), None)
            return
        events = decode(raw)
        if len(events) != 1:
            raise InvalidRecord("invalid_value", f"a {table} record holds one snapshot, not {len(events)}")
        value = validate(table, events[0])
        if reference_key(table, value) != k:
            raise InvalidRecord("invalid_value", f"the record's key {k} is not its {REFERENCE_KEY_FIELD[table]} "
                                                 f"{reference_key(table, value)}")
        if table == "watchlist":
            self[table][k] = {f: value[f] for f in WATCH_FIELDS if f in value}
        elif table == "beneficiary":
            self[table][self._key(table, k)] = {f: value[f] for f in BENEFICIARY_FACTS if f in value}
        elif value.get("lots"):
            self[table][k] = value
        else:
            self[table].pop(k, None)


async def follow(conn: Any, topics: dict[str, str], tables: ReferenceTables,
                 refused: Callable[[str, Any, InvalidRecord], Awaitable[None]],
                 on_record: Callable[[str, bool], None] = lambda table, ok: None,
                 ready: asyncio.Event | None = None) -> None:
    """Read every partition of each reference topic from the beginning and keep following (runs forever);
    ``ready`` is set once every partition is read to the end offset it had when reading began."""
    by_topic = {topic: table for table, topic in topics.items()}

    async def apply(record: Any) -> None:
        table = by_topic[record.topic]
        try:
            tables.apply(table, record.key, record.value)
            on_record(table, True)
        except InvalidRecord as e:
            on_record(table, False)
            await refused(table, record, e)

    async with TopicFollower(conn, by_topic) as follower:
        await follower.follow(apply, ready.set if ready is not None else None)
