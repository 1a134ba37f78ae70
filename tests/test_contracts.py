"""Validation: every refusal reason is reachable and named; the examples are valid."""
import copy

import orjson
import pytest

from models.contracts.records import REASONS, InvalidRecord, decode, load_schema, validate

STREAMS = ["prescription", "claim", "waste", "telemetry"]


def example(stream):
    return copy.deepcopy(load_schema(stream)["examples"][0])


def example_with(stream, path, value):
    """The stream's example with the field at ``path`` (keys and list indexes) set to ``value``."""
    e = example(stream)
    target = e
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return e


@pytest.mark.parametrize("stream", STREAMS)
def test_schema_examples_are_valid(stream):
    e = validate(stream, example(stream))
    assert e["_t"] > 1.7e9


def refusal(stream, event):
    with pytest.raises(InvalidRecord) as info:
        validate(stream, event)
    assert info.value.reason in REASONS
    return info.value


def test_not_json_and_not_object():
    with pytest.raises(InvalidRecord) as e:
        decode(b"{not json")
    assert e.value.reason == "not_json"
    with pytest.raises(InvalidRecord) as e:
        decode(b"42")
    assert e.value.reason == "not_an_object"
    with pytest.raises(InvalidRecord) as e:
        decode(b"[]")
    assert e.value.reason == "empty_batch"
    assert decode(b'[{"a":1},{"b":2}]') == [{"a": 1}, {"b": 2}]


def test_missing_field_names_it():
    e = example("telemetry")
    del e["temperature_c"]
    err = refusal("telemetry", e)
    assert err.reason == "missing_field" and "temperature_c" in err.detail


def test_wrong_type():
    e = example("telemetry")
    e["temperature_c"] = "warm"
    assert refusal("telemetry", e).reason == "wrong_type"


@pytest.mark.parametrize("stream,path,value", [
    ("telemetry", ("temperature_c",), 500),
    ("prescription", ("items", 0, "days_supply"), 99999),
    ("waste", ("weight_kg",), -3),
    ("claim", ("items", 0, "quantity"), 0),
])
def test_absurd_values(stream, path, value):
    assert refusal(stream, example_with(stream, path, value)).reason == "absurd_value"


def test_unknown_schema_version_and_enum():
    e = example("claim")
    e["schema_version"] = 3
    assert refusal("claim", e).reason == "unknown_schema_version"
    e = example("waste")
    e["category"] = "radioactive"
    assert refusal("waste", e).reason == "invalid_value"


def test_event_time_plausibility():
    e = example("telemetry")
    e["event_time"] = "1970-01-01T00:00:00+00:00"
    assert refusal("telemetry", e).reason == "absurd_value"
    e["event_time"] = "yesterday"
    assert refusal("telemetry", e).reason == "invalid_value"


def test_cross_field_checks_on_claims():
    e = example("claim")
    e.update(claim_type="inpatient", admission_date="2026-11-20", discharge_date="2026-11-10")
    err = refusal("claim", e)
    assert err.reason == "absurd_value" and "discharge_date" in err.detail
    e = example("claim")
    e["fund_paid"] = e["total_amount"] + 100
    assert refusal("claim", e).reason == "absurd_value"


def test_examples_roundtrip_through_orjson():
    for s in STREAMS:
        [e] = decode(orjson.dumps(example(s)))
        validate(s, e)


@pytest.mark.parametrize("stream,path,value", [
    ("prescription", ("prescriber_id",), "D7\x1b[2J"),         # an escape sequence would clear the console
    ("prescription", ("department",), "IM\u202eMI"),            # a bidi override reorders what an operator reads
    ("claim", ("institution_id",), "H 1"),
    ("claim", ("items", 0, "item_code"), "A\u200b"),           # a zero-width space: two look-alike codes
    ("waste", ("carrier_id",), "C1\n"),
    ("telemetry", ("device_id",), "\x00"),
])
def test_identifiers_and_codes_refuse_spaces_controls_and_invisible_characters(stream, path, value):
    err = refusal(stream, example_with(stream, path, value))
    assert err.reason == "invalid_value"
    assert err.detail.endswith(f"{path[-1]} must be a code: no spaces, control or invisible format characters")
    assert value not in err.detail


def test_free_text_fields_stay_free_and_are_known():
    e = example("prescription")
    e["items"][0]["name"] = "阿莫西林胶囊 0.25 g\u202e"  # a drug's name may hold anything; no alert copies it
    validate("prescription", e)
    from models.contracts.records import free_text_fields
    assert free_text_fields("claim") == {"name", "patient_id"}
    assert free_text_fields("telemetry") == frozenset() and free_text_fields("waste") == frozenset()


def test_claim_v2_carries_physicians_diagnoses_drg_and_amounts_and_v1_is_still_accepted():
    v2 = load_schema("claim", 2)["examples"][0]
    e = validate("claim", copy.deepcopy(v2))
    assert (e["principal_diagnosis"], e["drg"], e["physicians"]["attending"]) == ("J18.9", "ES31", "H001-D07")
    assert validate("claim", example("claim"))["schema_version"] == 1
    v1_with_v2_fields = dict(example("claim"), drg="ES31")  # v1 knows no DRG: a v2 field on a v1 claim is ignored
    assert validate("claim", v1_with_v2_fields)
    bad = copy.deepcopy(v2)
    bad["claim_period"] = {"start": "2026-11-24", "end": "2026-11-20"}
    assert refusal("claim", bad).reason == "absurd_value"
    bad = copy.deepcopy(v2)
    bad["allowed_amount"] = bad["total_amount"] + 50
    assert "allowed_amount" in refusal("claim", bad).detail
    bad = copy.deepcopy(v2)
    bad["diagnosis_code_system"] = "ICD-11"
    assert refusal("claim", bad).reason == "invalid_value"
    bad = copy.deepcopy(v2)
    bad["physicians"]["attending"] = "H001 D07"  # a code with a space
    assert "physicians" in refusal("claim", bad).detail or "attending" in refusal("claim", bad).detail


def test_beneficiary_facts_are_checked():
    b = load_schema("beneficiary")["examples"][0]
    assert validate("beneficiary", copy.deepcopy(b))["sex"] == "M"
    bad = dict(b, death_date="1980-01-01")
    assert "death_date 1980-01-01 is before birth_date" in refusal("beneficiary", bad).detail
    assert refusal("beneficiary", dict(b, sex="X")).reason == "invalid_value"
    assert refusal("beneficiary", dict(b, national_id="110101199001011234")).reason in REASONS  # no extra fields
