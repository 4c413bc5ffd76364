"""The bundled demo model: loads offline for every pipeline, fits the size budget, and makes frames
that the world's parser reads as prompted. Thresholds are measured rates minus a margin (see
assets/demo-model/README.md)."""
from __future__ import annotations

import numpy as np
import pytest

from genl.models import DEMO_DIR, DEMO_NAME, ModelManager, demo_available

pytestmark = pytest.mark.skipif(not demo_available(), reason="assets/demo-model is missing")

# Measured with exactly the settings of test_generation_reads_as_prompted (seed 0), see README:
# colour 0.81 (animatediff) / 0.94 (tuning_free), background 1.0 / 1.0; thresholds leave a margin.
MIN_COLOUR_RATE = 0.7
MIN_BACKGROUND_RATE = 0.9


@pytest.fixture(scope="module")
def manager():
    return ModelManager()


def test_sizes():
    files = [p for p in DEMO_DIR.rglob("*") if p.is_file()]
    sizes = [p.stat().st_size for p in files]
    assert max(sizes) < 16 * 2**20
    assert sum(sizes) <= 40 * 2**20
    assert all(p.suffix != ".bin" for p in files)


@pytest.mark.parametrize("pipeline", ["animatediff", "tuning_free", "edit"])
def test_loads_offline(manager, pipeline, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = manager.get(pipeline, DEMO_NAME, device="cpu")
    expected = "UNetMotionModel" if pipeline == "animatediff" else "UNet2DConditionModel"
    assert type(pipe.unet).__name__ == expected


def test_image_unet_is_the_bundles_2d_unet(manager):
    """The image pipelines get unet_2d/'s own weights when stage 3 tuned the video model's 2D layers
    (--motion-train attention|all), else the motion UNet's weights without its motion modules."""
    from safetensors.torch import load_file

    image = manager.get("tuning_free", DEMO_NAME, device="cpu").unet.state_dict()
    motion = manager.get("animatediff", DEMO_NAME, device="cpu").unet.state_dict()
    assert set(image) == {k for k in motion if "motion_modules" not in k}
    own = sorted((DEMO_DIR / "unet_2d").glob("*.safetensors"))
    truth = {k: v for f in own for k, v in load_file(f).items()} if own else motion
    assert all(np.array_equal(image[k].numpy(), truth[k].float().numpy()) for k in list(image)[:20])


@pytest.mark.parametrize("pipeline", ["animatediff", "tuning_free"])
def test_generation_reads_as_prompted(manager, pipeline):
    from genl.demo.evaluate import frame_scores
    from genl.settings import CoDenoiseSettings
    from genl.timeline import load_timeline

    segments = [(0, 7, "a red circle moving right over grass"), (8, 15, "a blue square moving left over sand")]
    prompt = " | ".join(f"{a}-{b}: {t}" for a, b, t in segments)
    pipe = manager.get(pipeline, DEMO_NAME, device="cpu")
    frames = pipe(load_timeline(prompt), num_frames=16, height=128, width=128, num_inference_steps=10,
                  guidance_scale=7.5, codenoise=CoDenoiseSettings(clip_length=8, stride=4), seed=0).frames
    scores = frame_scores(np.asarray(frames), segments)
    assert np.mean(scores["colour"]) >= MIN_COLOUR_RATE
    assert np.mean(scores["background"]) >= MIN_BACKGROUND_RATE
