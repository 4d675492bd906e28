import pytest
from serving import write_model_dir, write_prompts


@pytest.fixture(scope="session")
def serve_assets(tmp_path_factory):
    """A tiny model folder and a prompts folder with 8 prompts (see serving.py)."""
    root = tmp_path_factory.mktemp("serve")
    model_dir = write_model_dir(root / "model")
    prompts = write_prompts(root / "prompts", model_dir)
    return {"model": str(model_dir), "prompts": str(prompts)}
