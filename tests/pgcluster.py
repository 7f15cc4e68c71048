"""A private PostgreSQL 15 cluster for one test run (Debian's policy-rc.d blocks the service)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from studiohub.db import make_engine
from tests.ports import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PostgresCluster:
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/studiohub"

    def psql(self, sql: str) -> str:
        return subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
             "studiohub", "-At", "-c", sql], capture_output=True, text=True, check=True).stdout

    def stop(self) -> None:
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"])


def start_cluster(workdir: Path) -> PostgresCluster:
    """initdb + pg_ctl as the postgres account, listening on 127.0.0.1 only, trust auth."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.chown(workdir, "postgres", "postgres")
    datadir = workdir / "data"
    _as_postgres([str(PG_BIN / "initdb"), "-D", str(datadir), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8"])
    port = free_port()
    _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(datadir), "-w", "-l",
                  str(workdir / "postgres.log"), "-o",
                  f"-p {port} -c listen_addresses=127.0.0.1 -k {workdir}", "start"])
    cluster = PostgresCluster(datadir, port)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                    "studiohub"], check=True, capture_output=True)
    return cluster


@contextmanager
def private_cluster() -> Iterator[PostgresCluster]:
    """A cluster under /tmp itself: pytest's temporary tree is 0700 root, closed to postgres."""
    workdir = Path(tempfile.mkdtemp(prefix="studiohub-pg-"))
    workdir.chmod(0o755)
    cluster = start_cluster(workdir / "cluster")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def fresh_store(url: str, store_module: ModuleType) -> Iterator[Any]:
    """A ``Store`` of ``store_module`` (the jobs or the sharing store) on empty tables."""
    engine = make_engine(url)
    store_module.Base.metadata.drop_all(engine)
    engine.dispose()
    store = store_module.Store(url)
    try:
        yield store
    finally:
        store.engine.dispose()


def _as_postgres(cmd: list[str]) -> None:
    result = subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True,
                            text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stdout}{result.stderr}")
