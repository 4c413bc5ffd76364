"""Shared fixtures: tiny models are built from configs once per test session and saved like real ones."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from tiny import save_tiny_models

    return save_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def model_manager():
    from genl.models import ModelManager

    return ModelManager()
