"""A checkpoint's capture is O(1) and its keys are encoded while the runtime runs on: what is written must be
exactly the state at the capture, whatever the runtime did to those keys in between (copy on write)."""
from __future__ import annotations

import random

import orjson

from models.contracts.alert import Source
from models.engine.detector import KeyedDetector
from models.engine.runtime import META, Runtime


class Tally(KeyedDetector):
    """Counts each key's events; a key whose count reaches 3 is emptied (deleted from the store); a timer an hour
    after each event clears the key."""

    name, version, stream, key, key_field, Limits = "test.tally", "1", "claim", "patient", "patient", dict
    retention_s = 10 * 86400.0

    def process(self, ctx, event, source):
        n = ctx.state.get("n", 0) + 1
        if n >= 3:
            ctx.state.clear()
        else:
            ctx.state["n"] = n
            ctx.set_timer(event["_t"] + 3600.0, "quiet")
        return []

    def on_timer(self, ctx, tag, t):
        ctx.state["quiet"] = t
        return []


def feed(rt: Runtime, rng: random.Random, t: float, n: int) -> float:
    for i in range(n):
        t += rng.uniform(0, 900)
        rt.process({"patient": f"P{rng.randrange(12)}", "_t": t}, Source("zhijian.claims", 0, int(t), f"C{t}"))
    return t


def changelog_view(records) -> dict[tuple[str, str], object]:
    return {(d, k): (None if v is None else orjson.loads(v)) for d, k, v in records if d != META}


def expected_view(rt: Runtime, before: dict) -> dict:
    """The changelog value of every key in ``before``'s keys, from a snapshot."""
    now = {(e[0], e[1]): e for e in orjson.loads(orjson.dumps(rt.snapshot()))["entries"]}
    return {k: now.get(k) for k in before}


def test_what_is_written_is_the_state_at_the_capture_whatever_happens_meanwhile():
    for seed in range(30):
        rng = random.Random(seed)
        rt = Runtime([Tally()])
        t = feed(rt, rng, 0.0, 40)
        rt.capture().all()                       # a first checkpoint: everything so far written
        t = feed(rt, rng, t, 25)
        at_capture = {(e[0], e[1]): e for e in orjson.loads(orjson.dumps(rt.snapshot()))["entries"]}
        changed = set(rt._dirty)
        capture = rt.capture()
        assert capture.pending == changed and not rt._dirty   # O(1): the dirty set itself, handed over
        written = []
        while not capture.done:                  # slices of 2 interleaved with more events, as the agents do
            t = feed(rt, rng, t, rng.randrange(4))
            written += capture.slice(2)
        view = changelog_view(written)
        names = {(Tally.name, k[1]) for k in changed}
        assert set(view) == names
        for k, v in view.items():
            assert v == at_capture.get(k), (seed, k)
        assert rt._capture is None
        # what changed meanwhile goes with the next capture, and the two together equal the state now
        later = changelog_view(rt.capture().all())
        merged = {**at_capture, **{k: v for k, v in later.items()}}
        now = {(e[0], e[1]): e for e in orjson.loads(orjson.dumps(rt.snapshot()))["entries"]}
        assert {k: v for k, v in merged.items() if v is not None} == now


def test_an_aborted_write_is_written_again_by_the_next_capture():
    rng = random.Random(5)
    rt = Runtime([Tally()])
    t = feed(rt, rng, 0.0, 30)
    keys = set(rt._dirty)
    capture = rt.capture()
    capture.slice(3)
    capture.abort()                              # the producer failed: nothing of it counts as written
    assert rt._capture is None
    again = changelog_view(rt.capture().all())
    assert {k[1] for k in again} == {k[1] for k in keys}
    feed(rt, rng, t, 5)


def test_a_small_key_rests_as_text_once_written_and_decodes_on_use():
    rt = Runtime([Tally()])
    src = Source("zhijian.claims", 0, 0, "C")
    rt.process({"patient": "A", "_t": 0.0}, src)
    rt.process({"patient": "B", "_t": 1.0}, src)
    capture = rt.capture()
    rt.process({"patient": "B", "_t": 2.0}, src)  # before the capture's slice reaches B: B is encoded first
    written = {k: orjson.loads(v)[2] for _, k, v in capture.all()}
    assert written == {"A": {"n": 1}, "B": {"n": 1}}                   # the state at the capture
    entry_a, entry_b = rt._store[(0, "A")], rt._store[(0, "B")]
    assert entry_a.obj is None and entry_a.text == '{"n":1}'           # written by the slice: rests as its text
    assert entry_b.obj == {"n": 2} and entry_b.text is None            # changed since: in use
    rt.process({"patient": "A", "_t": 3.0}, src)
    assert rt.store_of(Tally.name, "A") == {"n": 2} and rt._store[(0, "A")].text is None


class Ledger(KeyedDetector):
    """Keeps a long list per key (a state past LARGE_STATE_CHARS once encoded)."""

    name, version, stream, key, key_field, Limits = "test.ledger", "1", "claim", "patient", "patient", dict

    def process(self, ctx, event, source):
        ctx.state.setdefault("lines", []).append([event["_t"], "x" * 40])
        return []


def test_a_large_state_rests_only_after_several_idle_checkpoints_and_a_small_one_after_one():
    from models.engine.runtime import LARGE_STATE_CHARS, LARGE_STATE_IDLE
    rt = Runtime([Ledger()])
    n = LARGE_STATE_CHARS // 40

    def src(i):
        return Source("zhijian.claims", 0, i, f"C{i}")
    for i in range(n):
        rt.process({"patient": "BIG", "_t": float(i)}, src(i))
    rt.process({"patient": "SMALL", "_t": float(n)}, src(n))
    big, small = rt._store[(0, "BIG")], rt._store[(0, "SMALL")]
    rt.capture().all()
    assert len(big.text) >= LARGE_STATE_CHARS > len(small.text)
    rt.capture().all()
    assert small.obj is None and big.obj is not None        # the small key rests; the large one waits
    for _ in range(LARGE_STATE_IDLE - 1):
        rt.capture().all()
    assert big.obj is not None
    rt.capture().all()
    assert big.obj is None and orjson.loads(big.text)["lines"][-1][0] == float(n - 1)
    rt.process({"patient": "BIG", "_t": n + 1.0}, src(n + 1))  # used again: decoded, and the count starts over
    rt.capture().all()
    rt.capture().all()
    assert big.obj is not None and big.idle == 1
    written = dict(((d, k), v) for d, k, v in rt.capture().all())
    assert (Ledger.name, "BIG") not in written  # waiting unused writes nothing to the changelog
