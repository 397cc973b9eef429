"""The suite runs offline: the network guard works, and loading stays inside the machine."""

import socket

import pytest

import vitnotes as vn


def test_network_guard_refuses_connections():
    from conftest import NETWORK_ATTEMPTS

    before = len(NETWORK_ATTEMPTS)
    with pytest.raises(AssertionError, match="reach the network"):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    assert NETWORK_ATTEMPTS[before:] == [("huggingface.co", 443)]
    del NETWORK_ATTEMPTS[before:]  # this test's own attempt is expected


def test_a_caught_attempt_is_still_recorded():
    from conftest import NETWORK_ATTEMPTS

    before = len(NETWORK_ATTEMPTS)
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except AssertionError:
        pass  # a library that swallows the error must not hide the attempt
    assert len(NETWORK_ATTEMPTS) == before + 1
    del NETWORK_ATTEMPTS[before:]  # this test's own attempt is expected


def test_loading_a_folder_opens_no_socket(vit_folder):
    assert vn.load(vit_folder).geometry.layers == 3


def test_kernel_guard_refuses_and_logs(tmp_path):
    """The sitecustomize that nbval's and the hub runs' kernels start with: outside connections are
    refused and logged, loopback ones (the kernel's own channels) are not."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    log = tmp_path / "net.log"
    code = (
        "import socket\n"
        "try:\n    socket.create_connection(('huggingface.co', 443), timeout=1)\nexcept OSError as e:\n    print(e)\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); c = socket.create_connection(s.getsockname())\n"
        "print('loopback ok')\n"
    )
    env = {**os.environ, "VITNOTES_NET_LOG": str(log), "PYTHONPATH": str(Path(__file__).parent / "netguard")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "refused by the test guard" in out and "loopback ok" in out
    assert log.read_text().strip() == "'huggingface.co'"
