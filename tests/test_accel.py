"""The compiled-UNet path (genl/accel.py) and when the model manager takes it. Compiling real kernels takes
minutes on a CPU, so the wiring is checked with torch.compile's eager backend: the same blocks get wrapped,
the outputs stay the same, and channels-last changes only the memory layout."""
import pytest
import torch

from genl.accel import accelerate_unet, compile_repeated_blocks
from genl.models import ModelManager
from tiny import tiny_unet


def _call(unet):
    torch.manual_seed(1)
    x = torch.randn(2, 4, 8, 8)
    text = torch.randn(2, 5, 32)
    with torch.no_grad():
        return unet(x, torch.tensor(10), encoder_hidden_states=text).sample


def test_regional_compilation_wraps_the_repeated_blocks_and_keeps_outputs():
    unet = tiny_unet()
    expected = _call(unet)
    count = compile_repeated_blocks(unet, backend="eager")
    blocks = [m for m in unet.modules() if type(m).__name__ in ("Transformer2DModel", "ResnetBlock2D")]
    assert count == len(blocks) > 0
    assert all(getattr(m, "_compiled_call_impl", None) is not None for m in blocks)
    torch.testing.assert_close(_call(unet), expected)


def test_channels_last_changes_layout_not_outputs():
    unet = tiny_unet()
    expected = _call(unet)
    same = accelerate_unet(unet, "none", channels_last=True)
    assert same is unet
    conv = unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    torch.testing.assert_close(_call(unet), expected, atol=1e-5, rtol=1e-5)


def test_unknown_mode_and_a_model_without_blocks_are_plain_errors():
    with pytest.raises(ValueError, match="Unknown compile mode"):
        accelerate_unet(tiny_unet(), "fast")
    with pytest.raises(ValueError, match="nothing to compile"):
        compile_repeated_blocks(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("env, device, expected", [
    ("", "cpu", False), ("", "cuda", True), ("1", "cpu", True), ("0", "cuda", False), ("yes", "cuda", True)])
def test_the_manager_compiles_on_cuda_unless_told_otherwise(monkeypatch, env, device, expected):
    monkeypatch.setenv("GENL_COMPILE", env)
    assert ModelManager().should_compile(torch.device(device)) is expected


def test_an_explicit_choice_beats_the_environment(monkeypatch):
    monkeypatch.setenv("GENL_COMPILE", "1")
    assert ModelManager(compile=False).should_compile(torch.device("cuda")) is False
