"""Whether a machine answers on a TCP port: a connect, no ICMP needed (SPEC "Reaching a caja")."""

from __future__ import annotations

import socket

SMB_PORTS = (445, 139)


def tcp_answers(host: str, ports: tuple[int, ...], timeout: float) -> bool:
    """A TCP connect to each port in turn, `timeout` in all. A frozen server still accepts
    (the kernel answers for it), so this catches machines that are off or closed, not hung."""
    per_port = timeout / len(ports)
    for port in ports:
        try:
            with socket.create_connection((host, port), timeout=per_port):
                return True
        except OSError:
            continue
    return False
