"""Running kcat (Debian package) against the project's broker.

Debian bookworm's librdkafka 2.0.2 cannot parse Tansu's ApiVersion v3 response ("Read
underflow"); librdkafka 2.16, bundled in the ``confluent-kafka`` wheel, can. When that
wheel is installed, kcat is run with it preloaded. Against Apache Kafka plain kcat works.
"""
from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from connectors.errors import ZhijianError

KCAT_HINT = "kcat is not installed: run `make setup` (it installs the Debian package kcat)"


def newer_librdkafka() -> str | None:
    try:
        import confluent_kafka
    except ImportError:
        return None
    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(glob.glob(str(libs / "librdkafka*.so*")))
    return found[0] if found else None


def kcat_command() -> tuple[list[str], dict[str, str]]:
    """The kcat executable and an environment in which it can talk to Tansu."""
    exe = shutil.which("kcat") or shutil.which("kafkacat")
    if exe is None:
        raise ZhijianError(KCAT_HINT)
    env = dict(os.environ)
    lib = newer_librdkafka()
    if lib:
        env["LD_PRELOAD"] = lib
    return [exe], env
