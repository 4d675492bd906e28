"""Shared by the command tests: the tiny model folder + reviews data (module scope), see test_cli.py."""

import pytest
from test_cli import write_model_dir, write_reviews


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {
        "model": str(write_model_dir(root / "model")),
        "data": str(write_reviews(root / "reviews.jsonl", text="review", label="stars")),
    }
