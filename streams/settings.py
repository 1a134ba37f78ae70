"""Settings of every zhijian program: defaults < TOML config files (--config or $ZHIJIAN_CONFIG) < environment <
flags.

``[kafka]``, ``[topics]`` and ``[worker]`` are read here, and every detector's section from the rules' registry
(``[coldchain.excursion]`` …). A section another program owns — ``[risk]``, the workbench's institution risk
score — is kept as written and typed by that program (:meth:`Settings.section`), so the worker carries none of
the workbench's code and a mistake in ``[risk]`` is refused by ``zhijian risk``, which reads it."""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.errors import ConfigError
from connectors.kafka.connection import KafkaConnection
from connectors.kafka.topics import TopicSpec, changelog_specs, topic_specs
from models.rules import registry

#: Sections another program owns and types itself (Settings.section): the institution risk score's.
PROGRAM_SECTIONS = ("risk",)
#: Detector configuration sections → the dataclass holding their thresholds (from the detectors themselves).
DETECTOR_SECTIONS: dict[str, type] = registry.sections()

ENV = {
    "ZHIJIAN_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "ZHIJIAN_SECURITY_PROTOCOL": ("kafka", "security_protocol"),
    "ZHIJIAN_SASL_MECHANISM": ("kafka", "sasl_mechanism"),
    "ZHIJIAN_SASL_USERNAME": ("kafka", "sasl_username"),
    "ZHIJIAN_SASL_PASSWORD": ("kafka", "sasl_password"),
    "ZHIJIAN_SSL_CAFILE": ("kafka", "ssl_cafile"),
    "ZHIJIAN_TOPIC_PREFIX": ("topics", "prefix"),
    "ZHIJIAN_METRICS_PORT": ("worker", "metrics_port"),
    "ZHIJIAN_METRICS_HOST": ("worker", "metrics_host"),
    "ZHIJIAN_INPUT_PARTITIONS": ("topics", "input_partitions"),
    "ZHIJIAN_REPLICATION_FACTOR": ("topics", "replication_factor"),
    "ZHIJIAN_LOG_LEVEL": ("worker", "log_level"),
    "ZHIJIAN_APP_ID": ("worker", "app_id"),
    "ZHIJIAN_DURABLE_STATE": ("worker", "durable_state"),
    "ZHIJIAN_CHECKPOINT_INTERVAL_S": ("worker", "checkpoint_interval_s"),
    "ZHIJIAN_ALERT_CAP_PER_HOUR": ("worker", "alert_cap_per_hour"),
}


@dataclass
class TopicSettings:
    prefix: str = "zhijian."
    input_partitions: int = 4
    alert_partitions: int = 4
    replication_factor: int = 1


@dataclass
class WorkerSettings:
    app_id: str = "zhijian"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # 0 = no metrics endpoint
    datadir: str = ".zhijian/worker-data"
    log_level: str = "WARNING"
    fetch_max_wait_ms: int = 100  # bounds idle long-polls; Faust hard-codes 1500 ms
    durable_state: bool = True  # checkpoint keyed detector state to changelogs and restore it (docs/state.md)
    checkpoint_interval_s: float = 1.0  # a checkpoint this often: the changed state in one transaction, then offsets
    alert_cap_per_hour: int = 20  # distinct alerts per entity per hour of event time, then a summary (0: no cap)
    reference_wait_s: float = 60.0  # at start, judge nothing until the reference topics are read (at most this long)

    def __post_init__(self) -> None:
        if not 0 < self.checkpoint_interval_s <= 60:
            raise ValueError(f"setting [worker] checkpoint_interval_s = {self.checkpoint_interval_s} must be more than 0 "
                             "and at most 60 seconds (the default is 1)")


@dataclass
class Settings:
    kafka: KafkaConnection = field(default_factory=lambda: KafkaConnection("127.0.0.1:9092"))
    topics: TopicSettings = field(default_factory=TopicSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    detectors: dict[str, Any] = field(default_factory=lambda: {k: v() for k, v in DETECTOR_SECTIONS.items()})
    #: sections other programs own, as written (``[risk]``: the workbench's risk score); see :meth:`section`
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, name: str, cls: type) -> Any:
        """A program's own section typed by its dataclass: unknown keys and wrong types are refused here."""
        return _typed(cls, name, self.programs.get(name, {}))

    def topic_specs(self) -> list[TopicSpec]:
        """Every topic the pipeline uses: inputs, alerts, dead letters, and the worker's state changelogs."""
        t = self.topics
        return (topic_specs(t.prefix, t.input_partitions, t.alert_partitions)
                + self.internal_topic_specs())

    def internal_topic_specs(self) -> list[TopicSpec]:
        """The worker's own topics: state changelogs and repartition topics (docs/state.md)."""
        return changelog_specs(self.worker.app_id, self.topics.input_partitions, list(registry.groups()))

    def input_topics(self) -> dict[str, str]:
        """Stream name → the input topic carrying it."""
        t = self.topics
        return {s.stream: s.name for s in topic_specs(t.prefix, t.input_partitions, t.alert_partitions) if s.stream}

    def reference_topics(self) -> dict[str, str]:
        """Reference table → the compacted topic carrying it (streams/worker/reference.py)."""
        t = self.topics
        return {s.reference: s.name for s in topic_specs(t.prefix, t.input_partitions, t.alert_partitions)
                if s.reference}

    def topic(self, suffix: str) -> str:
        return f"{self.topics.prefix}{suffix}"


def _typed(cls: type, section: str, values: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown setting [{section}] {key}; known: {', '.join(sorted(fields))}")
        want = type(getattr(defaults, key))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is bool and isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            value = value.lower() in ("true", "1", "yes")  # from the environment
        if want is int and isinstance(value, str) and value.isdigit():
            value = int(value)
        if want is float and isinstance(value, str):  # from the environment
            try:
                value = float(value)
            except ValueError:
                pass  # refused below, by name
        if getattr(defaults, key) is not None and not isinstance(value, want):
            raise ConfigError(f"setting [{section}] {key} = {value!r} should be a {want.__name__}")
        out[key] = value
    try:
        return dataclasses.replace(defaults, **out)
    except ValueError as e:  # a section's own check (a table of the wrong shape): its message names the fix
        raise ConfigError(str(e)) from None


def _read_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; pass an existing file to --config / ZHIJIAN_CONFIG")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML ({e}); fix the line it names") from None


def load_settings(path: str | Path | list[str | Path] | None = None,
                  overrides: dict[str, dict[str, Any]] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from config files (later files override earlier ones key by key; several in
    ``ZHIJIAN_CONFIG`` are separated by ``:``), the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    if path is None or path == []:
        path = [p for p in environ.get("ZHIJIAN_CONFIG", "").split(os.pathsep) if p]
    paths = path if isinstance(path, list) else [path]
    # Dotted detector sections arrive nested: {"coldchain": {"excursion": {...}}}.
    sections: dict[str, dict[str, Any]] = {}
    for p in paths:
        for name, body in _read_config(p).items():
            if not isinstance(body, dict):
                raise ConfigError(f"config key {name!r} must be a [section]")
            if name in ("kafka", "topics", "worker", *PROGRAM_SECTIONS):
                sections.setdefault(name, {}).update(body)
                continue
            for sub, values in body.items():
                full = f"{name}.{sub}"
                if full not in DETECTOR_SECTIONS or not isinstance(values, dict):
                    raise ConfigError(f"unknown config section [{full}]; known: kafka, topics, worker, "
                                      + ", ".join(PROGRAM_SECTIONS) + ", "
                                      + ", ".join(DETECTOR_SECTIONS))
                sections.setdefault(full, {}).update(values)
    for var, (section, key) in ENV.items():
        if environ.get(var):
            sections.setdefault(section, {})[key] = environ[var]
    for section, values in (overrides or {}).items():
        sections.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})

    unknown = set(sections) - {"kafka", "topics", "worker", *PROGRAM_SECTIONS, *DETECTOR_SECTIONS}
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}")
    kafka = dict(sections.get("kafka", {}))
    known_kafka = {f.name for f in dataclasses.fields(KafkaConnection)}
    for key in kafka:
        if key not in known_kafka:
            raise ConfigError(f"unknown setting [kafka] {key}; known: {', '.join(sorted(known_kafka))}")
    kafka.setdefault("bootstrap_servers", "127.0.0.1:9092")
    return Settings(
        kafka=KafkaConnection(**kafka),
        topics=_typed(TopicSettings, "topics", sections.get("topics", {})),
        worker=_typed(WorkerSettings, "worker", sections.get("worker", {})),
        detectors={name: _typed(cls, name, sections.get(name, {})) for name, cls in DETECTOR_SECTIONS.items()},
        programs={name: sections[name] for name in PROGRAM_SECTIONS if name in sections},
    )
