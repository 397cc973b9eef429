"""The suite runs offline: the network guard works, and loading stays inside the machine."""
import socket

import pytest

import vitnotes as vn


def test_network_guard_refuses_connections():
    with pytest.raises(AssertionError, match="reach the network"):
        socket.create_connection(("huggingface.co", 443), timeout=1)


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
