"""Log databases for the review tests: a SQLite file per test, and a real PostgreSQL server that the test
session starts itself (initdb + pg_ctl from Debian's postgresql package, which .ci/run installs)."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ..conftest import free_port


def _pg_bin() -> Path | None:
    for name in ("initdb", "pg_ctl"):
        if shutil.which(name) is None:
            found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
            return Path(found[-1]).parent if found else None
    return Path(shutil.which("initdb")).resolve().parent


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A throw-away PostgreSQL cluster on a free loopback port; yields a function making fresh databases."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql; .ci/run does)")
    root = tmp_path_factory.mktemp("pg")
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    # initdb refuses to run as root; CI runs as root, so the cluster belongs to the postgres system user.
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(root, 0o777)
        shutil.chown(sock, "postgres")
        for p in root.parents:  # the postgres user must be able to reach the directory
            if str(p).startswith(str(tmp_path_factory.getbasetemp().parent)):
                os.chmod(p, os.stat(p).st_mode | 0o011)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    def run(cmd: list[str]) -> None:
        res = subprocess.run(as_user + cmd, capture_output=True, text=True, env=env, timeout=240)
        if res.returncode != 0:
            log = (root / "log.txt").read_text() if (root / "log.txt").exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout}{res.stderr}{log}")

    run([str(bindir / "initdb"), "-D", str(data), "-U", "sagpt", "-A", "trust", "-E", "UTF8", "--no-sync"])
    # -t: a 2-core CI box under load can take well over pg_ctl's default 60 s to accept connections.
    run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log.txt"), "-w", "-t", "180",
         "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(f"host=127.0.0.1 port={port} user=sagpt dbname=postgres", autocommit=True).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

    def new_database() -> str:
        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={port} user=sagpt dbname=postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql://sagpt@127.0.0.1:{port}/{name}"

    yield new_database
    subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                   capture_output=True, env=env, timeout=60)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """Each store test runs against both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return request.getfixturevalue("postgres_server")()
