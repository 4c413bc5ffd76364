"""Shared fixtures: tiny models are built from configs once per test session and saved like real ones."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network


@pytest.fixture(scope="session")
def tiny_models():
    from tiny import cached_tiny_models

    return cached_tiny_models()


@pytest.fixture(scope="session")
def server():
    """The real app on a free port (tiny models, a real worker), one per test session."""
    from conftest_app import app_server

    return app_server()


@pytest.fixture(scope="session")
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


@pytest.fixture(scope="session")
def model_manager():
    from genl.models import ModelManager

    return ModelManager()
