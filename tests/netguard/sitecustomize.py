"""Network guard for notebook kernels (on PYTHONPATH, Python imports it at start-up).

Every connection that would leave the machine is refused with an OSError and logged to
``$VITNOTES_NET_LOG``; loopback and Unix sockets (the kernel's own channels) stay open. Used by
``make nbval`` and ``tests/test_hub_notebooks.py``, which fail when the log is not empty.
"""

import os
import socket

_LOG = os.environ.get("VITNOTES_NET_LOG")
_LOCAL = ("127.0.0.1", "::1", "localhost", "0.0.0.0", "")
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo


def _refuse(where):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"{where!r}\n")
    raise OSError(f"network access refused by the test guard: {where!r}")


def _guard_connect(self, address, *args, **kwargs):
    if self.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] in _LOCAL):
        return _connect(self, address, *args, **kwargs)
    return _refuse(address)


def _guard_getaddrinfo(host, *args, **kwargs):
    if host is None or host in _LOCAL:
        return _getaddrinfo(host, *args, **kwargs)
    return _refuse(host)


socket.socket.connect = _guard_connect
socket.socket.connect_ex = _guard_connect
socket.getaddrinfo = _guard_getaddrinfo
