"""Replaying files onto the input topics: JSON lines or CSV (through a mapping), merged in event time.

Every record of every file is read, ordered by event time across files (stable, so equal
times keep file order; a record whose time does not parse goes last and the worker will
refuse it), and produced keyed by its entity — one event per Kafka record, or envelopes with
``batch`` > 1 — at most ``rate`` events a second.

Reference files (``beneficiary=FILE``) go first, one record per key on their compacted topic, then a
pause (``reference_lead_s``, 5 s) so that running workers have read them before the first claim; a
worker started later reads them whole before it judges anything. A CSV row with a cell that does not
convert (:class:`~connectors.files.mapping.Unmappable`) goes to the dead-letter topic with the column,
the file and the line named (headers ``zhijian.error.*``, reason ``invalid_value``), as the worker
would send a refused record.
"""
from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import orjson

from connectors.errors import ZhijianError
from connectors.files.mapping import Mapping, Unmappable
from connectors.kafka.producer import EnvelopeProducer
from connectors.kafka.topics import KEY_FIELD, REFERENCE_KEY_FIELD
from models.contracts.records import REFERENCES, STREAMS, parse_time


@dataclass(frozen=True)
class Refused:
    """A CSV row the mapping could not convert: it goes to the dead-letter topic, not to the worker."""

    path: str
    line: int
    row: dict[str, str]
    detail: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [("zhijian.error.topic", f"file:{self.path}".encode()), ("zhijian.error.offset", str(self.line).encode()),
                ("zhijian.error.reason", b"invalid_value"), ("zhijian.error.message", self.detail[:1000].encode())]


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise ZhijianError(f"{path} line {n} is not JSON ({e}); fix or remove that line") from None


def read_csv(path: Path, mapping: Mapping) -> Iterator[dict[str, Any] | Refused]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise ZhijianError(f"{path} has no header row; a CSV replay needs column names in its first line")
        for row in reader:
            try:
                yield mapping.apply(row)
            except Unmappable as e:
                yield Refused(str(path), reader.line_num, row, f"{path} line {reader.line_num}: {e}")


def _event_t(event: Any) -> float:
    try:
        t = event["event_time"]
        return parse_time(t).timestamp()
    except (KeyError, TypeError, ValueError):
        return float("inf")


def load_sources(specs: list[str], mappings: dict[str, Mapping]) -> list[tuple[float, str, dict[str, Any]]]:
    """`stream=path` specs → (event time, stream, event), merged in event-time order."""
    records: list[tuple[float, str, dict[str, Any]]] = []
    for spec in specs:
        stream, sep, path_text = spec.partition("=")
        if not sep or stream not in STREAMS + REFERENCES:
            raise ZhijianError(f"replay source {spec!r} must be STREAM=PATH with STREAM one of "
                               f"{', '.join(STREAMS + REFERENCES)}")
        path = Path(path_text)
        if not path.is_file():
            raise ZhijianError(f"replay file {path} does not exist")
        if path.suffix.lower() == ".csv":
            mapping = mappings.get(path.name) or mappings.get(stream)
            if mapping is None:
                raise ZhijianError(f"{path} is CSV: give its column mapping with --map {stream}=MAPPING.toml "
                                   "(see connectors/files/mappings/)")
            events: Iterator[Any] = read_csv(path, mapping)
        else:
            events = read_jsonl(path)
        first = float("-inf") if stream in REFERENCES else None  # reference data before any event
        records.extend((first if first is not None else _event_t(e), stream, e) for e in events)
    records.sort(key=lambda r: r[0])
    return records


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, or when forced)."""

    def __init__(self, total: int, out: IO[str] = sys.stderr, force: bool = False) -> None:
        self.total, self.out, self.enabled = total, out, force or out.isatty()
        self.start = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.25):
            return
        self.last = now
        share = done / self.total if self.total else 1.0
        bar = "#" * int(30 * share)
        rate = done / max(now - self.start, 1e-9)
        print(f"\rreplay [{bar:<30}] {done}/{self.total} {share:4.0%} {rate:,.0f} events/s", end="",
              file=self.out, flush=True)
        if final:
            print(file=self.out)


def replay(records: list[tuple[float, str, Any]], producer: EnvelopeProducer,
           rate: float | None = None, progress: Progress | None = None,
           reference_topics: dict[str, str] | None = None, dead_topic: str | None = None,
           reference_lead_s: float = 5.0) -> int:
    """Produce the records in order, at most `rate` events/s; returns how many were sent (refused rows
    included: they went to ``dead_topic``)."""
    start = time.monotonic()
    references = reference_topics or {}
    for i, (_, stream, event) in enumerate(records, 1):
        if isinstance(event, Refused):
            if dead_topic is not None:
                producer.producer.send(dead_topic, value=orjson.dumps(event.row), headers=event.headers())
            continue
        if stream in REFERENCES:
            key = event.get(REFERENCE_KEY_FIELD[stream]) if isinstance(event, dict) else None
            producer.send_keyed(references[stream], [(str(key) if key is not None else "", event)])
            if i == len(records) or records[i][1] not in REFERENCES:
                producer.flush()  # the reference is on its topic before the first event …
                if i < len(records) and reference_lead_s > 0:
                    time.sleep(reference_lead_s)  # … and running workers have read it (they poll every second)
            continue
        key = event.get(KEY_FIELD[stream]) if isinstance(event, dict) else None
        producer.add(stream, str(key) if key is not None else "", event)
        if rate:
            ahead = i / rate - (time.monotonic() - start)
            if ahead > 0:
                producer.flush()
                time.sleep(ahead)
        if progress:
            progress.update(i)
    producer.flush()
    if progress:
        progress.update(len(records), final=True)
    return len(records)
