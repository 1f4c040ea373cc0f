"""The Apache Kafka broker's jars, fetched from Maven Central into a cache.

No tarball download is possible here, so the broker's runtime closure comes
from Maven (``cluster/kafka/pom.xml``) into ``~/.cache/smsgw/kafka-<v>/lib``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from smsgw.cluster.procs import ServiceError

COMPLETE_MARK = ".complete"


def cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "smsgw"


def resource_path(name: str) -> Path:
    return Path(str(resources.files("smsgw.cluster").joinpath("kafka", name)))


def kafka_lib_dir(version: str) -> Path:
    return cache_root() / f"kafka-{version}" / "lib"


def ensure_kafka_jars(version: str) -> Path:
    """Return the lib dir with the broker's jars, fetching them once with Maven."""
    lib = kafka_lib_dir(version)
    if (lib / COMPLETE_MARK).exists():
        return lib
    if shutil.which("mvn") is None:
        raise ServiceError("Maven (mvn) is needed to fetch the Kafka broker: apt-get install maven")
    work = lib.parent
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(lib, ignore_errors=True)  # never mix jars of two fetches
    pom = work / "pom.xml"
    shutil.copyfile(resource_path("pom.xml"), pom)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(pom),
        "package",
        f"-Dkafka.version={version}",
        f"-Dkafka.lib.dir={lib}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServiceError(
            f"fetching Kafka {version} jars with Maven failed:\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    if not any(lib.glob(f"kafka_2.13-{version}.jar")):
        raise ServiceError(f"Maven ran but {lib} holds no kafka_2.13-{version}.jar")
    (lib / COMPLETE_MARK).write_text(version)
    return lib
