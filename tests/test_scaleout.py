"""Scale-out: three `hyperspot up` instances, one PostgreSQL database, one Redis, behind nginx.

Shows what running several instances relies on: migrations applied once when all start at once,
rate limits enforced in total, caches honouring changes made through another instance within
``auth.cache_ttl_s``, tokens valid on every instance, and steady traffic surviving ``kill -9`` of
one instance with only the requests in flight on it lost, each visibly (a retriable error).

PostgreSQL only: the point is the shared database, and one backend shows it.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, Launcher, Server, add_tenant, bearer, free_port, secured_config
from test_migrations import history
from test_ratelimit_http import REDIS_URL
from traffic import Ledger, steady_traffic, stored_note_titles

from hyperspot.sandbox.databases import ProvisionedDatabase

pytestmark = pytest.mark.skipif(
    os.environ.get("HYPERSPOT_TEST_DB") != "postgres",
    reason="scale-out is shown on PostgreSQL (HYPERSPOT_TEST_DB=postgres)",
)

INSTANCES = 3
CACHE_TTL_S = 1.0
BURST = 6
WORKERS = 8  # concurrent clients of the steady traffic
MEMBER = ("member",)
UPSTREAM_HEADER = "x-upstream"


class Nginx:
    """nginx in the foreground, as the test's subprocess, with everything under ``folder``."""

    def __init__(self, folder: Path, upstreams: list[str]) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            # One failure takes an instance out for a while: a dead one is not tried again and
            # again. Idle connections to each are kept, as in production.
            f"        server {address} max_fails=1 fail_timeout=10s;"
            for address in upstreams
        )
        # As root, nginx runs its worker as 'nobody' unless told otherwise.
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        temp = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        self.config = folder / "nginx.conf"
        self.config.write_text(
            f"""
{user}
daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    upstream hyperspot {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://hyperspot;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # Another instance takes over when one cannot be reached; a request already sent
            # is retried only when idempotent (nginx never resends a POST).
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
""",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        with (self.folder / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                [binary, "-p", str(self.folder), "-c", str(self.config), "-e", "stderr"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited: {self.errors()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not come up: {self.errors()}")

    def errors(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in (self.folder / "stderr.log", self.folder / "error.log")
            if path.exists()
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module", autouse=True)
def nginx_installed() -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.fail("nginx is not installed (`apt-get install -y nginx`; .ci/run does it)")


def start_together(launcher: Launcher, config: dict[str, Any], count: int) -> list[Server]:
    """``count`` instances spawned at the same moment (they race for migrations and the root)."""
    spawned = [launcher.spawn(config) for _ in range(count)]
    servers = [
        Server(f"http://127.0.0.1:{port}", process, log_path) for process, log_path, port in spawned
    ]
    launcher.servers.extend(servers)
    deadline = time.monotonic() + 60
    for server in servers:
        while True:
            if server.process.poll() is not None:
                raise AssertionError(f"instance exited:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"instance did not come up:\n{server.log()}")
            time.sleep(0.05)
    return servers


@pytest.fixture
def cluster(
    launcher: Launcher, database: ProvisionedDatabase, tmp_path: Path
) -> Iterator[tuple[list[Server], Nginx]]:
    config = secured_config(
        database.url.url,
        {
            "auth": {"cache_ttl_s": CACHE_TTL_S},
            "database": {"pool_size": 4},
            "modules": {"notes": {"max_page_size": 1000}},
            "rate_limits": {
                "backend": "redis",
                "redis_url": REDIS_URL,
                # Per tenant, on the probes' class: the steady traffic (another class) and the
                # anonymous probes (no tenant) are not limited.
                "classes": {"health": {"tenant": {"rate_per_s": 0.5, "burst": BURST}}},
            },
        },
    )
    servers = start_together(launcher, config, INSTANCES)
    nginx = Nginx(tmp_path / "nginx", [s.url.removeprefix("http://") for s in servers]).start()
    try:
        yield servers, nginx
    finally:
        nginx.stop()


def test_three_instances_behind_nginx_share_state_and_survive_a_kill(
    cluster: tuple[list[Server], Nginx], database: ProvisionedDatabase
) -> None:
    servers, nginx = cluster
    through = httpx.Client(base_url=nginx.url, timeout=30)
    try:
        check_migrations_applied_once(servers, database)
        check_tokens_work_everywhere(servers, through)
        check_rate_limits_are_shared(servers, through)
        check_caches_follow_changes_made_elsewhere(servers)
        check_a_killed_instance_loses_only_its_requests_in_flight(servers, nginx, through)
    finally:
        through.close()


def check_migrations_applied_once(servers: list[Server], database: ProvisionedDatabase) -> None:
    applied = Counter(
        line.split("applied migration ", 1)[1].split(" '", 1)[0]
        for server in servers
        for line in server.log().splitlines()
        if "applied migration " in line
    )
    recorded = history(database.url)
    assert len(recorded) == len(set(recorded)) > 0
    # Every migration applied by exactly one instance, and each recorded once.
    assert applied == Counter(f"{module} v{version}" for module, version in recorded)


def check_tokens_work_everywhere(servers: list[Server], through: httpx.Client) -> None:
    # JWTs are verified with the shared key, no session state: any instance accepts any token.
    add_tenant(servers[0], "acme")
    headers = bearer("acme", "ann", MEMBER)
    for server in servers:
        me = server.client.get("/access/v1/me", headers=headers)
        assert me.status_code == 200, me.text
        assert (me.json()["subject"], me.json()["tenant_id"]) == ("ann", "acme")
    seen = {
        through.get("/access/v1/me", headers=headers).headers[UPSTREAM_HEADER] for _ in range(6)
    }
    assert len(seen) == INSTANCES  # round robin: every instance answered the same token


def check_rate_limits_are_shared(servers: list[Server], through: httpx.Client) -> None:
    # A tenant of its own per run: the buckets in Redis outlive a run by a few seconds.
    tenant = f"rl-{uuid.uuid4().hex[:12]}"
    add_tenant(servers[0], tenant)
    headers = bearer(tenant, "probe", MEMBER)
    responses = [through.get("/healthz", headers=headers) for _ in range(4 * BURST)]
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(admitted) + len(refused) == len(responses)
    # The budget holds in total (plus at most one token refilled meanwhile), although every
    # instance admitted some of it.
    assert BURST <= len(admitted) <= BURST + 1
    assert len({r.headers[UPSTREAM_HEADER] for r in admitted}) == INSTANCES
    assert refused[0].headers["content-type"] == "application/problem+json"
    assert int(refused[0].headers["retry-after"]) >= 1


def check_caches_follow_changes_made_elsewhere(servers: list[Server]) -> None:
    add_tenant(servers[0], "globex")
    member = bearer("globex", "gus", MEMBER)

    def statuses() -> list[int]:
        return [s.client.get("/notes/v1/notes", headers=member).status_code for s in servers]

    assert statuses() == [200] * INSTANCES  # each instance has globex's lineage cached now
    for change, expected in (("suspend", 403), ("resume", 200)):
        started = time.monotonic()
        response = servers[0].client.post(
            f"/tenants/v1/tenants/globex/{change}", headers=bearer(ROOT)
        )
        assert response.status_code == 200, response.text
        # The instance that made the change knows at once; the others within the cache ttl.
        assert servers[0].client.get("/notes/v1/notes", headers=member).status_code == expected
        while statuses() != [expected] * INSTANCES:
            assert time.monotonic() - started < CACHE_TTL_S + 0.5, statuses()
            time.sleep(0.05)


def check_a_killed_instance_loses_only_its_requests_in_flight(
    servers: list[Server], nginx: Nginx, through: httpx.Client
) -> None:
    headers = bearer("acme", "ann", MEMBER)
    ledger = Ledger()
    victim = servers[1]

    async def drive() -> None:
        stop = asyncio.Event()
        limits = httpx.Limits(max_connections=WORKERS)
        async with httpx.AsyncClient(base_url=nginx.url, timeout=30, limits=limits) as client:
            traffic = asyncio.create_task(
                steady_traffic(client, headers, ledger, stop, workers=WORKERS, prefix="steady")
            )
            await asyncio.sleep(1.5)
            victim.process.kill()  # SIGKILL: no graceful anything
            await asyncio.sleep(2.0)
            stop.set()
            await traffic

    asyncio.run(drive())
    victim.process.wait(timeout=10)
    victim.client.close()

    assert ledger.unexpected == []
    # Lost: at most the writes in flight on the killed instance (one per client at most), each
    # seen as a retriable error. Reads are idempotent: nginx retried those on another instance.
    retriable = {"502", "503", "504", "ConnectError", "ReadError", "RemoteProtocolError"}
    assert {key.split(" ", 1)[1] for key in ledger.failed} <= retriable, ledger.failed
    assert not any(key.startswith("GET ") for key in ledger.failed), ledger.failed
    assert ledger.failures <= WORKERS, ledger.failed
    assert ledger.count("201") > 50 and ledger.count("200") > 50, ledger.outcomes
    # Every acknowledged write is there, read through nginx from the instances left.
    stored = stored_note_titles(through, headers)
    assert ledger.acknowledged.items() <= stored.items()
    survivors = {s.url.removeprefix("http://") for s in servers if s is not victim}
    assert {through.get("/healthz").headers[UPSTREAM_HEADER] for _ in range(6)} <= survivors
