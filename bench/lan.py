"""A capped link to another network namespace, for benchmarks that reach cajas over a LAN's bandwidth.

Loopback moves a push's megabytes as fast as the CPU copies them; a café's LAN does not. `Lan` makes a
network namespace joined to this one by a veth pair, with a token bucket (`tc ... tbf`) on each end's
egress at the rate given, so whatever runs inside it (a Samba server) is reached through a link of that
rate. This kernel has no `netem`, so no latency is added: a round trip stays the loopback's (tens of
microseconds against a LAN's 0.2-0.5 ms), which favours the pushes that make many small requests.
`measure()` sends bytes through the link and says what it carries, so a figure never rests on the
setting alone. Needs root and iproute2 (`ip`, `tc`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time

_UNITS = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


def parse_rate(text: str) -> float:
    """'100mbit' -> bits per second; the spelling tc takes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(kbit|mbit|gbit)", text.strip().lower())
    if not m:
        raise ValueError(f"{text!r} is not a rate; write it as tc does, e.g. 100mbit or 1gbit")
    return float(m.group(1)) * _UNITS[m.group(2)]


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "a network namespace needs root"
    if not (shutil.which("ip") and shutil.which("tc")):
        return "ip and tc are not installed (Debian: apt-get install -y iproute2)"
    return None


class Lan:
    """`with Lan("100mbit") as lan:` -> run a server with `lan.prefix + [command]`, reach it at `lan.address`."""

    def __init__(self, rate: str, subnet: int = 213):
        self.rate, self.bits = rate, parse_rate(rate)
        tag = os.getpid() % 100000
        self.ns, self.host_if, self.ns_if = f"scpb{tag}", f"scpb{tag}h", f"scpb{tag}n"
        self.host_address, self.address = f"10.{subnet}.0.1", f"10.{subnet}.0.2"
        self.prefix = ["ip", "netns", "exec", self.ns]

    def __enter__(self) -> "Lan":
        # The bucket holds at least one timer tick of traffic at this rate, or tbf caps below it.
        burst = max(64 * 1024, int(self.bits / 8 / 100))
        steps = [
            ["ip", "netns", "add", self.ns],
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
            ["ip", "link", "set", self.ns_if, "netns", self.ns],
            ["ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            [*self.prefix, "ip", "addr", "add", f"{self.address}/30", "dev", self.ns_if],
            [*self.prefix, "ip", "link", "set", self.ns_if, "up"],
            [*self.prefix, "ip", "link", "set", "lo", "up"],
            ["tc", "qdisc", "add", "dev", self.host_if, "root", "tbf", "rate", self.rate, "burst", str(burst), "latency", "50ms"],
            [*self.prefix, "tc", "qdisc", "add", "dev", self.ns_if, "root", "tbf", "rate", self.rate, "burst", str(burst),
             "latency", "50ms"],
        ]
        try:
            for step in steps:
                subprocess.run(step, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            self.__exit__(None, None, None)
            raise RuntimeError(f"{' '.join(exc.cmd)} failed: {exc.stderr.strip()}") from exc
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)  # gone with the namespace, normally

    def measure(self, megabytes: int = 16) -> float:
        """Bits per second that one TCP stream carries from here into the namespace."""
        sink = subprocess.Popen(
            [*self.prefix, sys.executable, "-c",
             "import socket,sys\n"
             "s=socket.create_server((sys.argv[1],0));print(s.getsockname()[1],flush=True)\n"
             "c,_=s.accept()\n"
             "while c.recv(1<<20):pass\n"
             "c.sendall(b'k');c.close()", self.address],
            stdout=subprocess.PIPE, text=True)
        try:
            port = int(sink.stdout.readline())
            chunk = b"\0" * (1 << 20)
            with socket.create_connection((self.address, port), timeout=60) as conn:
                started = time.perf_counter()
                for _ in range(megabytes):
                    conn.sendall(chunk)
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)  # the sink has read everything
                seconds = time.perf_counter() - started
        finally:
            sink.wait(30)
        return megabytes * len(chunk) * 8 / seconds
