"""Topic contracts: decode raw record bytes and check them against the versioned JSON Schemas.

Each input topic carries one JSON object per event, or a JSON array of such objects
(a micro-batch envelope, which lets producers amortise per-message costs). Every event
names its ``schema_version``; the schema files live in ``models/contracts/schemas/NAME.vN.json``.

A record that cannot be used raises :class:`InvalidRecord` with a *reason* from a small,
fixed vocabulary (it is a metric label) and a human-readable *detail*.

>>> events = decode(b'{"schema_version": 1, "device_id": "F1"}')
>>> events
[{'schema_version': 1, 'device_id': 'F1'}]
>>> try:
...     validate("telemetry", events[0])
... except InvalidRecord as e:
...     print(e.reason, "-", e.detail)
missing_field - data must contain ['device_kind', 'event_time', 'facility_id', 'temperature_c'] properties
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from typing import Any, Callable

import fastjsonschema
import orjson

from models.contracts import typed

STREAMS: tuple[str, ...] = ("prescription", "claim", "waste", "telemetry")
#: Reference data the detectors look up (not event streams): the stock of each cold-chain device, the facts
#: of each insured person (birth date, sex, date of death).
REFERENCES: tuple[str, ...] = ("inventory", "beneficiary", "watchlist")
#: Contract versions accepted per stream; claim v1 stays accepted beside v2 (v2 adds fields, changes none).
SCHEMA_VERSIONS: dict[str, tuple[int, ...]] = {s: (1,) for s in (*STREAMS, *REFERENCES, "alert")}
SCHEMA_VERSIONS["claim"] = (1, 2)

#: The bounded vocabulary of reasons a record is refused (the ``reason`` metric label).
REASONS: tuple[str, ...] = (
    "not_json",
    "not_an_object",
    "empty_batch",
    "unknown_schema_version",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "absurd_value",
    "unprocessable",
    "detector_error",
)

# Event time must fall in a plausible window: a typo'd year or a clock reset is refused.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_CLOCK_SKEW = timedelta(days=2)

#: The pattern of every identifier and code field (ids, region, department, item and drug codes): no
#: whitespace, no control character, no invisible format character (zero-width space, bidi override
#: U+202E …). Reasons and consoles print these fields, so none of them can carry an escape sequence or
#: reorder the text an operator reads. Free-text fields (a drug's name, a long-term reason) are not
#: constrained, and no alert copies them.
CODE_PATTERN = "^[^\\x00-\\x20\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff]+$"

_RULE_TO_REASON = {
    "required": "missing_field",
    "type": "wrong_type",
    "minimum": "absurd_value",
    "maximum": "absurd_value",
    "exclusiveMinimum": "absurd_value",
    "exclusiveMaximum": "absurd_value",
    "minItems": "invalid_value",
    "maxItems": "absurd_value",
    "minLength": "invalid_value",
    "maxLength": "absurd_value",
    "enum": "invalid_value",
    "pattern": "invalid_value",
    "format": "invalid_value",
}


class InvalidRecord(ValueError):
    """A record that cannot be processed; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def load_schema(stream: str, version: int = 1) -> dict[str, Any]:
    """The JSON Schema of one stream's contract, as a dictionary."""
    text = resources.files("models.contracts").joinpath("schemas", f"{stream}.v{version}.json").read_text()
    return json.loads(text)


def free_text_fields(stream: str, version: int = 1) -> frozenset[str]:
    """Names of the fields of a stream's contract that hold free text (no code pattern, no enumeration):
    a drug's name, a unit, a long-term reason. No alert may copy them (the patient id is pseudonymized
    before any detector sees it).

    >>> sorted(free_text_fields("prescription"))
    ['long_term_reason', 'name', 'patient_id', 'unit']
    """
    found: set[str] = set()

    def walk(props: dict[str, Any]) -> None:
        for name, spec in props.items():
            if spec.get("type") == "string" and not {"enum", "pattern", "format"} & spec.keys():
                found.add(name)
            walk(spec.get("properties", {}))
            if isinstance(spec.get("items"), dict):
                walk(spec["items"].get("properties", {}))

    walk(load_schema(stream, version)["properties"])
    return frozenset(found)


_VALIDATORS: dict[tuple[str, int], Callable[[Any], Any]] = {}
_FAST: dict[tuple[str, int], Callable[[Any], bool]] = {}


def _fast(stream: str, version: int) -> Callable[[Any], bool]:
    """The typed fast path of a contract (:mod:`models.contracts.typed`); one that always says "ask the schema"
    when the schema uses what the fast path does not translate."""
    key = (stream, version)
    fn = _FAST.get(key)
    if fn is None:
        try:
            fn = typed.checker(load_schema(stream, version))
        except typed.Unsupported:
            fn = _ask_the_schema
        _FAST[key] = fn
    return fn


def _ask_the_schema(event: Any) -> bool:
    return False


def _validator(stream: str, version: int) -> Callable[[Any], Any]:
    key = (stream, version)
    fn = _VALIDATORS.get(key)
    if fn is None:
        fn = _VALIDATORS[key] = fastjsonschema.compile(load_schema(stream, version))
    return fn


def decode(raw: bytes | None) -> list[Any]:
    """Bytes of one Kafka record → the list of events it carries (one object, or an array)."""
    if raw is None:
        raise InvalidRecord("not_json", "record has no value (tombstone)")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRecord("not_json", f"not valid JSON: {e}") from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        if not value:
            raise InvalidRecord("empty_batch", "an envelope must hold at least one event")
        return value
    raise InvalidRecord("not_an_object", f"expected a JSON object or array, got {type(value).__name__}")


def event_id(stream: str, event: dict[str, Any]) -> str:
    """The identity of an event within its stream: what an alert's evidence names, what a detector counts once.

    >>> event_id("waste", {"manifest_id": "M1", "event_type": "received"}), event_id("claim", {"claim_id": "C9"})
    ('M1/received', 'C9')
    """
    if stream == "prescription":
        return event["prescription_id"]
    if stream == "claim":
        return event["claim_id"]
    if stream == "waste":
        return f"{event['manifest_id']}/{event['event_type']}"
    return f"{event['device_id']}@{event['event_time']}"


def parse_time(text: str) -> datetime:
    """ISO 8601 date-time → aware datetime (naive input is taken as UTC)."""
    t = datetime.fromisoformat(text)
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def validate(stream: str, event: Any, now: datetime | None = None) -> dict[str, Any]:
    """Check one event against its stream's schema and plausibility rules; return it.

    The parsed event time is added as ``event["_t"]`` (epoch seconds, float) so that
    detectors never parse it again. ``now``: the clock the plausibility bounds are read against (the worker
    reads it once per record, not once per event).
    """
    if not isinstance(event, dict):
        raise InvalidRecord("not_an_object", f"an event must be a JSON object, got {type(event).__name__}")
    version = event.get("schema_version")
    if type(version) is not int or version not in SCHEMA_VERSIONS[stream]:  # 1.0 and true equal 1 in Python
        raise InvalidRecord(
            "unknown_schema_version",
            f"schema_version {version!r} is not one of {list(SCHEMA_VERSIONS[stream])} for {stream}",
        )
    try:
        if not _fast(stream, version)(event):  # certainly valid, or the schema itself decides (and says why)
            _validator(stream, version)(event)
    except fastjsonschema.JsonSchemaValueException as e:
        message = e.message
        if e.rule == "pattern" and e.rule_definition == CODE_PATTERN:
            message = f"{e.name} must be a code: no spaces, control or invisible format characters"
        raise InvalidRecord(_RULE_TO_REASON.get(e.rule, "invalid_value"), message) from None
    try:
        t = parse_time(event["event_time"])
    except ValueError:
        raise InvalidRecord("invalid_value", f"event_time {event['event_time']!r} is not ISO 8601") from None
    now = now or datetime.now(timezone.utc)
    if t < EARLIEST_EVENT_TIME or t > now + MAX_CLOCK_SKEW:
        raise InvalidRecord("absurd_value", f"event_time {event['event_time']} is outside {EARLIEST_EVENT_TIME.year}..now+{MAX_CLOCK_SKEW.days}d")
    _check_plausible(stream, event, now.date())
    event["_t"] = t.timestamp()
    return event


#: Calendar dates (admission, discharge, service) outside this range are refused as absurd.
EARLIEST_DATE = date(1900, 1, 1)


def _date(event: dict[str, Any], field: str, text: Any, today: date) -> date:
    try:
        d = date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidRecord("invalid_value", f"{field} {str(text)[:40]!r} is not a calendar date") from None
    if not EARLIEST_DATE <= d <= today + MAX_CLOCK_SKEW:
        raise InvalidRecord("absurd_value", f"{field} {d} is outside {EARLIEST_DATE.year}..today+{MAX_CLOCK_SKEW.days}d")
    return d


def _check_plausible(stream: str, event: dict[str, Any], today: date) -> None:
    if stream == "claim":
        adm, dis = event.get("admission_date"), event.get("discharge_date")
        for field in ("admission_date", "discharge_date"):
            if event.get(field):
                _date(event, field, event[field], today)
        for i, item in enumerate(event.get("items") or ()):
            if isinstance(item, dict) and item.get("service_date"):
                _date(event, f"items[{i}].service_date", item["service_date"], today)
        period = event.get("claim_period")
        if period:
            start, end = _date(event, "claim_period.start", period["start"], today), _date(event, "claim_period.end", period["end"], today)
            if end < start:
                raise InvalidRecord("absurd_value", f"claim_period ends ({end}) before it starts ({start})")
        if adm and dis and date.fromisoformat(dis) < date.fromisoformat(adm):
            raise InvalidRecord("absurd_value", f"discharge_date {dis} is before admission_date {adm}")
        if event["fund_paid"] > event["total_amount"] + 0.01:
            raise InvalidRecord(
                "absurd_value", f"fund_paid {event['fund_paid']} exceeds total_amount {event['total_amount']}"
            )
        if event.get("allowed_amount", 0.0) > event["total_amount"] + 0.01:
            raise InvalidRecord(
                "absurd_value", f"allowed_amount {event['allowed_amount']} exceeds total_amount {event['total_amount']}"
            )
    elif stream == "beneficiary":
        born = _date(event, "birth_date", event["birth_date"], today) if event.get("birth_date") else None
        died = _date(event, "death_date", event["death_date"], today) if event.get("death_date") else None
        if born and died and died < born:
            raise InvalidRecord("absurd_value", f"death_date {died} is before birth_date {born}")
