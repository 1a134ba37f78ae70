"""Kafka connection settings: bootstrap servers plus optional SASL/SSL, for every client."""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from connectors.errors import ConfigError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        if not self.bootstrap_servers or not all(":" in s for s in self.servers):
            raise ConfigError(
                f"bootstrap servers {self.bootstrap_servers!r} are not host:port[,host:port]; "
                "set ZHIJIAN_BOOTSTRAP_SERVERS or [kafka] bootstrap_servers, e.g. kafka1:9092,kafka2:9092"
            )
        if self.security_protocol not in PROTOCOLS:
            raise ConfigError(f"security_protocol {self.security_protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in MECHANISMS:
                raise ConfigError(f"sasl_mechanism {self.sasl_mechanism!r} is not one of {', '.join(MECHANISMS)}")
            if not self.sasl_username or not self.sasl_password:
                raise ConfigError("SASL needs sasl_username and sasl_password (ZHIJIAN_SASL_USERNAME / _PASSWORD)")

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.security_protocol:
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients."""
        kw: dict[str, Any] = {"bootstrap_servers": self.servers, "security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password)
        if self.ssl_cafile:
            kw["ssl_cafile"] = self.ssl_cafile
        return kw

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients."""
        kw: dict[str, Any] = {"bootstrap_servers": self.servers, "security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password)
        ctx = self.ssl_context()
        if ctx is not None:
            kw["ssl_context"] = ctx
        return kw

    def faust_url(self, scheme: str = "kafka") -> list[str]:
        return [f"{scheme}://{s}" for s in self.servers]

    def faust_credentials(self) -> Any:
        import faust

        if self.security_protocol.startswith("SASL"):
            return faust.SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                                         mechanism=self.sasl_mechanism, ssl_context=self.ssl_context())
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        return None
