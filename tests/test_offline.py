"""The suite runs offline: the network guard works, and loading stays inside the machine."""
import socket

import pytest

import vitnotes as vn


def test_network_guard_refuses_connections():
    with pytest.raises(AssertionError, match="reach the network"):
        socket.create_connection(("huggingface.co", 443), timeout=1)


def test_loading_a_folder_opens_no_socket(vit_folder):
    assert vn.load(vit_folder).geometry.layers == 3
