"""The engine's commands: ``worker`` (the Faust worker on a Kafka cluster), ``topics`` (create what is missing)
and ``broker`` (the embedded Apache Kafka in the foreground)."""
from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any

from connectors.errors import ZhijianError
from connectors.kafka.broker import (KAFKA_VERSION, ROLES, BrokerSecurity, EmbeddedBroker, apply_acls, ensure_topics,
                                     port_is_free, role_acls, wait_until_answers)
from streams.cli.common import STATE_DIR, kafka_args, settings_of
from streams.settings import load_settings


def register(sub: Any) -> None:
    w = sub.add_parser("worker", help="run the Faust worker against a Kafka cluster")
    kafka_args(w)
    w.add_argument("--metrics-port", type=int, help="serve /metrics on this port (default 9464, 0 = off)")
    w.add_argument("--metrics-host", help="bind address of /metrics (default 127.0.0.1)")
    w.add_argument("--log-level", help="WARNING (default), INFO, DEBUG")
    w.add_argument("--connect-timeout", type=float, default=15.0)
    w.add_argument("--no-create-topics", action="store_true", help="do not create missing topics")
    w.set_defaults(func=cmd_worker)

    t = sub.add_parser("topics", help="create the topics that do not exist yet (partitions and replication from the "
                                      "settings), then exit")
    kafka_args(t)
    t.add_argument("--connect-timeout", type=float, default=60.0)
    t.set_defaults(func=cmd_topics)

    b = sub.add_parser("broker", help="run the embedded Apache Kafka broker (KRaft) in the foreground with the "
                                      "topics created")
    b.add_argument("--config", action="append", help="TOML config file, repeatable")
    b.add_argument("--port", type=int, default=9092)
    b.add_argument("--data-dir", help="log directory, formatted on first start and kept (default .zhijian/kafka, "
                                      ".zhijian/kafka-scram or .zhijian/kafka-scram-tls)")
    b.add_argument("--ephemeral", action="store_true", help="keep the log in a temporary folder removed at stop")
    b.add_argument("--nodes", type=int, default=1,
                   help="a cluster of this many brokers (KRaft, each also a controller) on --port, --port + 1, …: "
                        "topics replicated 3 times with min.insync.replicas 2, as a region runs; always ephemeral")
    b.add_argument("--security", choices=("none", "scram", "scram-tls"), default="none",
                   help="SASL/SCRAM (and TLS with a generated self-signed certificate) with ACLs per principal")
    b.set_defaults(func=cmd_broker)


def cmd_worker(args: argparse.Namespace) -> int:
    from models.contracts.pseudonym import Pseudonymizer
    from streams.worker.app import run_worker  # Faust: loaded only by the command that runs it

    settings = settings_of(args, metrics_port=args.metrics_port, metrics_host=args.metrics_host,
                           log_level=args.log_level)
    try:
        Pseudonymizer.from_env()
    except ValueError as e:  # no key, or one too short: patients would be re-identifiable
        raise ZhijianError(str(e)) from None
    port = settings.worker.metrics_port
    if port and not port_is_free(port, settings.worker.metrics_host):
        raise ZhijianError(f"port {port} for /metrics is in use (another zhijian worker or demo?): give this worker "
                           "another with --metrics-port N, or none with --metrics-port 0")
    wait_until_answers(settings.kafka, timeout=args.connect_timeout)
    if not args.no_create_topics:
        ensure_topics(settings.kafka, settings.topic_specs(), settings.topics.replication_factor)
    else:  # its own state changelogs are the worker's business, like Faust's internal topics
        ensure_topics(settings.kafka, settings.internal_topic_specs(), settings.topics.replication_factor)
    return run_worker(settings)


def cmd_topics(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    wait_until_answers(settings.kafka, timeout=args.connect_timeout)
    created = ensure_topics(settings.kafka, settings.topic_specs(), settings.topics.replication_factor)
    print(f"created {', '.join(created)}" if created else "every topic exists already")
    return 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def cmd_broker(args: argparse.Namespace) -> int:
    if args.nodes != 1:
        return _cluster(args)
    security = None if args.security == "none" else BrokerSecurity(tls=args.security == "scram-tls")
    data_dir = None if args.ephemeral else Path(args.data_dir or STATE_DIR / (
        "kafka" if security is None else f"kafka-{args.security}"))
    with EmbeddedBroker(port=args.port, data_dir=data_dir, security=security) as broker:
        settings = load_settings(args.config, overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}})
        ensure_topics(broker.connection, settings.topic_specs())
        where = "a temporary folder, removed at stop" if data_dir is None else f"{data_dir} (kept across restarts)"
        print(f"Apache Kafka {KAFKA_VERSION} (KRaft) on {broker.bootstrap_servers}, data in {where}\n"
              f"topics: {', '.join(s.name for s in settings.topic_specs())}", flush=True)
        if security is not None:
            _secure(broker, security, settings)
        print("Ctrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while broker.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def _cluster(args: argparse.Namespace) -> int:
    from connectors.kafka.cluster import EmbeddedCluster

    if args.nodes < 3:
        raise ZhijianError(f"--nodes {args.nodes}: a cluster that survives the loss of a broker needs 3 or more "
                           "(or 1 for the single embedded broker)")
    if args.security != "none" or args.data_dir:
        raise ZhijianError("--nodes runs an ephemeral cluster without security: drop --security and --data-dir")
    with EmbeddedCluster(args.nodes, base_port=args.port) as cluster:
        rf = cluster.replication_factor
        settings = load_settings(args.config, overrides={"kafka": {"bootstrap_servers": cluster.bootstrap_servers},
                                                         "topics": {"replication_factor": rf}})
        cluster.ensure_topics(settings.topic_specs())
        print(f"Apache Kafka {KAFKA_VERSION} (KRaft), a cluster of {args.nodes} on {cluster.bootstrap_servers}, "
              f"replication factor {rf}, min.insync.replicas {rf - 1}; data in temporary folders, removed at stop\n"
              f"run workers with ZHIJIAN_BOOTSTRAP_SERVERS={cluster.bootstrap_servers} ZHIJIAN_REPLICATION_FACTOR={rf}"
              f"\nCtrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while any(b.running for b in cluster.nodes.values()):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def _secure(broker: EmbeddedBroker, security: BrokerSecurity, settings: Any) -> None:
    """ACLs per principal, and a ``--config`` file for each beside the broker's data."""
    apply_acls(broker.connection, role_acls(settings.topics.prefix, settings.worker.app_id,
                                            list(settings.input_topics().values())
                                            + list(settings.reference_topics().values())))
    clients = broker.data_dir / "clients"
    clients.mkdir(mode=0o700, exist_ok=True)
    print(f"{security.protocol} with {security.mechanism}, ACLs on; a --config file per principal:", flush=True)
    for role, purpose in ROLES.items():
        path = clients / f"{role}.toml"
        path.touch(mode=0o600)
        path.write_text(client_config(broker.connection_for(role)))
        print(f"  {path}  {purpose}", flush=True)


def client_config(conn: Any) -> str:
    """A ``--config`` TOML file with one principal's connection settings."""
    fields = {"bootstrap_servers": conn.bootstrap_servers, "security_protocol": conn.security_protocol,
              "sasl_mechanism": conn.sasl_mechanism, "sasl_username": conn.sasl_username,
              "sasl_password": conn.sasl_password, "ssl_cafile": conn.ssl_cafile}
    return "[kafka]\n" + "".join(f'{k} = "{v}"\n' for k, v in fields.items() if v)
