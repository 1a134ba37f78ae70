"""The typed fast path (models/contracts/typed.py) never accepts what the published JSON Schema refuses: a
differential test on generated events — the contracts' examples and simulated traffic, mutated at any depth
(fields dropped, retyped, set to boundary values, extra fields added) — against the schema validator itself.
And it does take the common case: every simulated event passes it, so the slow path is the exception."""
from __future__ import annotations

import copy
import os

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.contracts import typed
from models.contracts.records import REFERENCES, STREAMS, load_schema
from streams.lab.simulator import RegionSimulator, SimulationConfig

CONTRACTS = [(s, v) for s in (*STREAMS, *REFERENCES) for v in ((1, 2) if s == "claim" else (1,))]
SCHEMAS = {c: load_schema(*c) for c in CONTRACTS}
SLOW = {c: fastjsonschema.compile(schema) for c, schema in SCHEMAS.items()}
FAST = {c: typed.checker(schema) for c, schema in SCHEMAS.items()}
EXAMPLES_PER_TEST = int(os.environ.get("TYPED_EXAMPLES", "300"))


def _simulated() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    sim = RegionSimulator(SimulationConfig(seed=3, days=2))
    for stream, _, event in sim.until(sim.t0 + 2 * 86400):
        out.setdefault(stream, []).append(event)
    return out


SIMULATED = _simulated()
SEEDS = {c: SCHEMAS[c].get("examples", []) + [e for e in SIMULATED.get(c[0], [])[:40]
                                              if e.get("schema_version") == c[1]] for c in CONTRACTS}

boundary = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.floats(),
    st.sampled_from([0, -1, 1.0, 0.0, -0.0, 1e-9, 1e308, 2**63, "", "x" * 16, "x" * 17, "x" * 64, "x" * 65, "x" * 129,
                     "A\u200bB", "A B", "A\nB", "AB\n", "\u202eAB", "\x7f", "2026-11-04", "2026-11-04T20:09:55",
                     "2026-11-04T20:09:55+08:00", "2026-11-04T20:09:55Z\n", "2026-02-30", "2026-11-04T25:00:00Z",
                     "outpatient", "inpatient", "drug", "fridge", [], {}, [1], {"a": 1}]),
    st.text(max_size=20)).map(copy.deepcopy)  # a fresh [] or {} each time: a mutation must not change the strategy


def _paths(value, prefix=()):
    """Every place in a JSON value: (container path, key or index)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix, k
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix, i
            yield from _paths(v, prefix + (i,))


def _at(value, path):
    for p in path:
        value = value[p]
    return value


@st.composite
def mutated(draw, contract):
    event = copy.deepcopy(draw(st.sampled_from(SEEDS[contract])))
    for _ in range(draw(st.integers(1, 3))):
        places = list(_paths(event))
        if not places:
            break
        path, key = draw(st.sampled_from(places))
        parent = _at(event, path)
        action = draw(st.sampled_from(["drop", "set", "set", "extra"]))
        if action == "drop":
            del parent[key]
        elif action == "set":
            parent[key] = draw(boundary)
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "x_note", "end"]))] = draw(boundary)
    return event


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: f"{c[0]}.v{c[1]}")
def test_the_fast_path_accepts_only_what_the_schema_accepts(contract):
    fast, slow = FAST[contract], SLOW[contract]

    @settings(max_examples=EXAMPLES_PER_TEST, deadline=None, suppress_health_check=list(HealthCheck))
    @given(mutated(contract))
    def check(event):
        if fast(event):
            slow(event)  # raises if the schema refuses what the fast path let through

    check()


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: f"{c[0]}.v{c[1]}")
def test_the_fast_path_takes_the_contract_examples_and_the_simulated_traffic(contract):
    seeds = SEEDS[contract]
    assert seeds, contract
    refused = [e for e in seeds if not FAST[contract](e)]
    assert not refused, refused[:1]


def test_a_schema_keyword_the_fast_path_does_not_know_leaves_the_stream_to_the_schema():
    with pytest.raises(typed.Unsupported):
        typed.checker({"type": "object", "properties": {"a": {"type": "string", "format": "uuid"}}})
    with pytest.raises(typed.Unsupported):
        typed.checker({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}})


def test_extra_fields_are_refused_where_the_schema_closes_the_object():
    schema = {"type": "object", "required": ["p"], "properties": {
        "p": {"type": "object", "additionalProperties": False, "properties": {"start": {"type": "string"}}}}}
    check = typed.checker(schema)
    assert check({"p": {"start": "a"}, "other": 1})          # open at the top
    assert not check({"p": {"start": "a", "end": "b"}})     # closed below
