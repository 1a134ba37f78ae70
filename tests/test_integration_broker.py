"""The embedded Apache Kafka broker behaves as the region's cluster does: it keeps its log across a
restart (clean or kill -9), serves transactions, and lets a consumer group join in seconds."""
from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError
from kafka.structs import OffsetAndMetadata

from connectors.kafka.broker import EmbeddedBroker

TOPIC = "zhijian.restart-check"


def _produce(bs: str, values: list[bytes]) -> None:
    p = KafkaProducer(bootstrap_servers=bs, acks="all")
    for v in values:
        p.send(TOPIC, value=v, partition=0)
    p.flush()
    p.close()


def _read_all(bs: str, topic: str = TOPIC, **kw) -> list[bytes]:
    c = KafkaConsumer(bootstrap_servers=bs, group_id=None, enable_auto_commit=False, **kw)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    out: list[bytes] = []
    deadline = time.monotonic() + 30
    while c.position(tp) < end and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=300).values():
            out += [r.value for r in records]
    c.close()
    return out


def _committed(admin: KafkaAdminClient, group: str) -> dict:
    """The group's committed offsets, once its coordinator has loaded them (a retriable wait after a start)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return admin.list_group_offsets(group)[group]
        except (CoordinatorLoadInProgressError, CoordinatorNotAvailableError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_keeps_topics_records_and_committed_offsets(tmp_path, how):
    data = tmp_path / "kafka"
    values = [f"record-{i}".encode() for i in range(10)]
    broker = EmbeddedBroker(data_dir=data).start()
    try:
        bs = broker.bootstrap_servers
        admin = KafkaAdminClient(bootstrap_servers=bs)
        admin.create_topics([NewTopic(TOPIC, 2, 1)])
        admin.close()
        _produce(bs, values)
        # a consumer group has handled six of them and committed that
        c = KafkaConsumer(bootstrap_servers=bs, group_id="restart-group", enable_auto_commit=False)
        c.commit({TopicPartition(TOPIC, 0): OffsetAndMetadata(6, "", -1)})
        c.close()
        assert broker.formatted_now
    finally:
        broker.kill() if how == "sigkill" else broker.stop()
    assert (data / "log" / "meta.properties").exists()

    # the same folder, a new port: nothing is formatted again, and everything is still there
    with EmbeddedBroker(data_dir=data) as again:
        assert not again.formatted_now
        bs = again.bootstrap_servers
        admin = KafkaAdminClient(bootstrap_servers=bs)
        assert TOPIC in admin.list_topics()
        committed = _committed(admin, "restart-group")
        admin.close()
        assert committed[TopicPartition(TOPIC, 0)].offset == 6
        assert _read_all(bs) == values
        # the group resumes where it committed
        c = KafkaConsumer(TOPIC, bootstrap_servers=bs, group_id="restart-group", enable_auto_commit=False,
                          auto_offset_reset="earliest")
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < 4 and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=300).values():
                got += [r.value for r in records]
        c.close()
        assert got == values[6:]


def test_transactions_and_a_fast_first_group_join(broker):
    bs = broker.bootstrap_servers
    admin = KafkaAdminClient(bootstrap_servers=bs)
    admin.create_topics([NewTopic(TOPIC, 1, 1)])
    admin.close()

    # InitProducerId with a transactional id, then a committed and an aborted transaction
    p = KafkaProducer(bootstrap_servers=bs, transactional_id="zhijian-test-tx")
    p.init_transactions()
    p.begin_transaction()
    p.send(TOPIC, b"committed", partition=0)
    p.commit_transaction()
    p.begin_transaction()
    p.send(TOPIC, b"aborted", partition=0)
    p.flush()  # written to the log, then aborted
    p.abort_transaction()
    p.close()
    assert _read_all(bs, isolation_level="read_committed") == [b"committed"]
    assert _read_all(bs, isolation_level="read_uncommitted") == [b"committed", b"aborted"]

    # a new consumer group's first join: seconds, not Tansu's ~30 s (figure printed for the README)
    t0 = time.monotonic()
    c = KafkaConsumer(TOPIC, bootstrap_servers=bs, group_id="first-join", auto_offset_reset="earliest")
    while not c.assignment() and time.monotonic() - t0 < 60:
        c.poll(timeout_ms=100)
    joined = time.monotonic() - t0
    c.close()
    print(f"first consumer-group join: {joined:.2f} s")
    assert c.assignment() or joined < 60
    assert joined < 20, f"the first group join took {joined:.1f} s (group.initial.rebalance.delay.ms not 0?)"


def test_a_port_taken_between_its_choice_and_the_bind_starts_the_broker_on_fresh_ones(tmp_path, monkeypatch, caplog):
    """Ports are chosen free and bound by the JVM a moment later; with tests and lab runs starting brokers and
    workers side by side, another process can take one in between (CI, 2026-12-07: a cluster node "exited at
    start"). A broker whose ports were chosen for it starts again on fresh ones instead of failing. Here the
    controller port it is given is already listening."""
    import socket

    from connectors.kafka import broker as broker_module

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real, calls = broker_module.free_port, []

    def chosen(host: str = "127.0.0.1") -> int:
        calls.append(host)
        return taken.getsockname()[1] if len(calls) == 2 else real(host)  # the first attempt's controller port

    monkeypatch.setattr(broker_module, "free_port", chosen)
    try:
        with caplog.at_level("WARNING", logger="connectors.kafka.broker"):
            with EmbeddedBroker(log_path=tmp_path / "broker.log") as b:
                admin = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers)
                assert len(admin.describe_cluster()["brokers"]) == 1
                admin.close()
                assert b.controller_port != taken.getsockname()[1]
    finally:
        taken.close()
    assert len(calls) == 4  # client and controller ports twice
    assert any("was taken by another process as it started" in r.getMessage() for r in caplog.records)
