"""Hosts for a test: network namespaces on a bridge, with addresses the test assigns.

:class:`Network` builds a small LAN on this machine: a bridge inside a namespace of its
own (the switch), one namespace per named host with one veth into the switch, and one
veth from the test's own namespace (the "outside" host: the test process, the sandbox
playing Pax8, the vendor stub). Every address is in a /24 the test picked at random among
those this machine does not route; no namespace has a default route, so nothing inside
reaches past the bridge. A host's link can be set down (:meth:`Network.partition`: its
packets vanish, as on a cut cable) and up again, and all of a host's processes killed at
once (:meth:`Network.kill_host`). :meth:`Network.close` removes every namespace and veth,
also after a failure; the test process may reach the hosts' addresses only while the
network exists (:func:`tests.support.network.allow`).

Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): :func:`unavailable`
says why it cannot be done here, for a skip that prints the reason.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from tests.support.network import allow

OUTSIDE = "outside"


def _ip(*args: str, namespace: str | None = None, check: bool = True) -> str:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why this machine cannot build a :class:`Network` (None when it can)."""
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
    probe = f"ffprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (RuntimeError, OSError) as exc:
        return f"cannot create a network namespace: {exc}"
    _ip("netns", "del", probe, check=False)
    return None


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no route of this machine covers."""
    routes = _ip("-4", "route", "show", "table", "all")
    used = []
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(first, strict=False))
    for _ in range(100):
        candidate = ipaddress.ip_network(
            f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24"
        )
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError("no free /24 in 10.0.0.0/8")


@dataclass(frozen=True)
class Host:
    """One host of the network: a namespace and its address (``outside``: no namespace)."""

    name: str
    address: str
    namespace: str | None
    port: str  # the switch's end of its veth: set down to cut it off

    @property
    def wrapper(self) -> list[str]:
        """The argv prefix that runs a command on this host."""
        return ["ip", "netns", "exec", self.namespace] if self.namespace else []

    def prefix(self, command: str) -> str:
        """``command`` (a shell command line) run on this host."""
        return " ".join([*self.wrapper, command])


class Network:
    """A bridge and ``hosts`` (names), each a namespace; see the module docstring."""

    def __init__(self, hosts: Sequence[str]) -> None:
        tag = secrets.token_hex(2)
        self.tag = tag
        self.subnet = _free_subnet()
        self.switch = f"ff{tag}-switch"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._allowed: contextlib.ExitStack = contextlib.ExitStack()
        addresses = iter(self.subnet.hosts())
        try:
            self._add_namespace(self.switch)
            _ip("link", "add", "br0", "type", "bridge", namespace=self.switch)
            _ip("link", "set", "br0", "up", namespace=self.switch)
            self._outside(f"ff{tag}out", str(next(addresses)))
            for index, name in enumerate(hosts):
                self._host(name, f"ff{tag}-{name}", f"p{index}", str(next(addresses)))
            self._allowed.enter_context(allow(h.address for h in self.hosts.values()))
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, namespace: str) -> None:
        _ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        _ip("link", "set", "lo", "up", namespace=namespace)

    def _outside(self, device: str, address: str) -> None:
        """A veth from the test's own namespace into the switch (no route but the /24)."""
        _ip("link", "add", device, "type", "veth", "peer", "name", "pout", "netns", self.switch)
        _ip("link", "set", "pout", "master", "br0", namespace=self.switch)
        _ip("link", "set", "pout", "up", namespace=self.switch)
        _ip("addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", device)
        _ip("link", "set", device, "up")
        self.hosts[OUTSIDE] = Host(OUTSIDE, address, None, "pout")
        self._outside_device = device

    def _host(self, name: str, namespace: str, port: str, address: str) -> None:
        self._add_namespace(namespace)
        _ip("link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", port,
            "netns", self.switch)  # fmt: skip
        _ip("link", "set", port, "master", "br0", namespace=self.switch)
        _ip("link", "set", port, "up", namespace=self.switch)
        _ip("addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0", namespace=namespace)
        _ip("link", "set", "eth0", "up", namespace=namespace)
        self.hosts[name] = Host(name, address, namespace, port)

    # -- faults ------------------------------------------------------------------------

    def partition(self, name: str) -> None:
        """Set the host's switch port down: from now on its packets vanish (no reset)."""
        _ip("link", "set", self.hosts[name].port, "down", namespace=self.switch)

    def heal(self, name: str) -> None:
        """Set the host's switch port up again."""
        _ip("link", "set", self.hosts[name].port, "up", namespace=self.switch)

    def pids(self, name: str) -> list[int]:
        """Every process running on the host."""
        namespace = self.hosts[name].namespace
        assert namespace is not None, "the outside host is the test's own"
        return [int(pid) for pid in _ip("netns", "pids", namespace, check=False).split()]

    def kill_host(self, name: str) -> list[int]:
        """SIGKILL every process on the host at once (a machine that lost its power)."""
        pids = self.pids(name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Kill what still runs on the hosts, remove every namespace and veth."""
        self._allowed.close()
        for name, host in list(self.hosts.items()):
            if host.namespace is not None:
                self.kill_host(name)
        for namespace in reversed(self._namespaces):
            _ip("netns", "del", namespace, check=False)  # its veths go with it
        self._namespaces.clear()
        device = getattr(self, "_outside_device", None)
        if device is not None:
            _ip("link", "del", device, check=False)  # gone with its peer already, normally

    def __enter__(self) -> Network:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts.values())
