"""What every benchmark shares: result rows, medians, timers, memory probes, the machine.

A benchmark returns `Row`s. Each row compares lakery with one competitor (another library,
a raw client, or the practical limit of the machine) on the same workload, measured in the
same run with the two interleaved, and keeps every sample so that the JSON file shows the
spread as well as the median.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/lakery_bench"
"""The benchmark database (created when missing); override with --postgres or
``LAKERY_BENCH_POSTGRES_URL``."""


@dataclass
class Row:
    """lakery against one competitor on one workload.

    Attributes:
        benchmark: the workload family (``bulk``, ``numpy``, ``s3``, ``dagster``, ``query``).
        case: what exactly ran, e.g. ``save sqlite/files``.
        unit: the unit of the values, e.g. ``objects/s``, ``GB/s``, ``ms``, ``s``.
        higher_is_better: whether a larger value is the better one.
        lakery: lakery's samples.
        other: the competitor's samples (empty when there is none).
        other_name: who the competitor is.
        goal: the goal this row is judged by, in words, or "".
        goal_ratio: the ratio lakery/competitor (in the "better" sense, see `ratio`) that
            meets the goal, or None when the goal is not a ratio.
        goal_limit: for goals on lakery's own value (e.g. latency under 5 ms), the limit.
        checks: further named pass/fail parts of the goal (e.g. peak memory).
        extra: more figures (peak memory, sizes, counts).
    """

    benchmark: str
    case: str
    unit: str
    higher_is_better: bool
    lakery: list[float]
    other: list[float] = field(default_factory=list)
    other_name: str = ""
    goal: str = ""
    goal_ratio: float | None = None
    goal_limit: float | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lakery_median(self) -> float:
        return statistics.median(self.lakery)

    @property
    def other_median(self) -> float | None:
        return statistics.median(self.other) if self.other else None

    @property
    def ratio(self) -> float | None:
        """How many times better lakery is (>1: lakery wins), from the medians."""
        other = self.other_median
        if other is None or other == 0 or self.lakery_median == 0:
            return None
        if self.higher_is_better:
            return self.lakery_median / other
        return other / self.lakery_median

    @property
    def met(self) -> bool | None:
        """Whether the goal is met (None when the row has no goal)."""
        checks: list[bool] = []
        if self.goal_ratio is not None:
            ratio = self.ratio
            checks.append(ratio is not None and ratio >= self.goal_ratio)
        if self.goal_limit is not None:
            value = self.lakery_median
            ok = value >= self.goal_limit if self.higher_is_better else value < self.goal_limit
            checks.append(ok)
        checks.extend(self.checks.values())
        return all(checks) if checks else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            lakery_median=self.lakery_median,
            other_median=self.other_median,
            ratio=self.ratio,
            met=self.met,
        )
        return data


# -- memory (Linux /proc) ----------------------------------------------------------------


def proc_status(name: str) -> int:
    """A memory figure of this process in bytes (``VmRSS``, ``VmHWM``) from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    msg = f"no {name} in /proc/self/status (this benchmark needs Linux)"
    raise RuntimeError(msg)


def reset_peak_rss() -> bool:
    """Reset the peak (VmHWM) to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- services ----------------------------------------------------------------------------


@contextmanager
def isolated_aws_environment() -> Iterator[None]:
    """Dummy AWS credentials; no config files, instance metadata or proxies are read."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower().endswith("_proxy"):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="benchmark",
        AWS_SECRET_ACCESS_KEY="benchmark-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def postgres_problem(url: str) -> str | None:
    """None when `url` answers (creating its database if missing), else why not."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    connect = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username,
        "password": parsed.password,
        "timeout": 5,
    }
    try:
        connection = await asyncpg.connect(database=parsed.database, **connect)
    except asyncpg.InvalidCatalogNameError:
        try:
            admin = await asyncpg.connect(database="postgres", **connect)
            try:
                await admin.execute(f'CREATE DATABASE "{parsed.database}"')
            finally:
                await admin.close()
        except Exception as exc:
            return f"cannot create database {parsed.database!r}: {exc!r}"
        return None
    except Exception as exc:
        return repr(exc)
    await connection.close()
    return None


async def postgres_version(url: str) -> str | None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        connection = await asyncpg.connect(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database=parsed.database,
            timeout=5,
        )
    except Exception:
        return None
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


# -- the machine -------------------------------------------------------------------------


def machine(postgres_server_version: str | None) -> dict[str, Any]:
    """What the results were measured on."""
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    versions = {}
    for package in ("sqlalchemy", "numpy", "pydantic", "dagster", "aiobotocore", "moto"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = None
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(memory / GiB, 1),
        "cpu": cpu or platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_server_version,
        "packages": versions,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
