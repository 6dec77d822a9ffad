"""Whether a machine answers on a TCP port: a connect, no ICMP needed (SPEC "Reaching a caja")."""

from __future__ import annotations

import socket

from . import smb_url

SMB_PORTS = (445, 139)


def ports_for(root: str) -> tuple[int, ...]:
    """The ports that say whether the machine of `root` is there: an smb:// root that names its
    own port is served on that one only (445 and 139 may well be closed); any other share
    (smb:// without a port, UNC, a mount) on SMB's own, 445 then 139."""
    if smb_url.is_smb(root):
        url = smb_url.parse(root)
        if url.explicit_port:
            return (url.port,)
    return SMB_PORTS


def ports_text(ports: tuple[int, ...]) -> str:
    """'port 4450' or 'ports 445, 139', for messages."""
    return f"port {ports[0]}" if len(ports) == 1 else "ports " + ", ".join(map(str, ports))


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


def unresolved(host: str) -> str | None:
    """Why `host` has no address, in words, or None when it has one. Asked only once a probe failed:
    a name that does not resolve is told apart from a machine that is off, since the fix differs."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return exc.strerror or str(exc)
    except (OSError, UnicodeError):
        return None
    return None
