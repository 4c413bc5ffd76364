"""Cross-frame attention: who attends to whom, checked by perturbing frames."""
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from genl.attention import CrossFrameAttnProcessor, key_frame_indices, reset_attention, set_cross_frame_attention

M, TOKENS, DIM = 7, 5, 16


def layer():
    torch.manual_seed(0)
    return Attention(query_dim=DIM, heads=2, dim_head=8).eval()


def run(attn, mode, x):
    return CrossFrameAttnProcessor(mode, M)(attn, x)


def dependents(mode, k):
    """Frames whose output changes when frame k changes: k itself (its query) and every frame using k's keys."""
    first, second = key_frame_indices(mode, M)
    return {k} | {j for j in range(M) if first[j] == k or second[j] == k}


def test_key_frames_match_the_paper():
    nb, anchor = key_frame_indices("bidirectional", 16)
    assert anchor.tolist() == [8] * 16
    assert nb[9].item() == 8 and nb[12].item() == 11 and nb[3].item() == 4 and nb[8].item() == 8
    first, prev = key_frame_indices("sparse_causal", 4)
    assert first.tolist() == [0, 0, 0, 0] and prev.tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError):
        key_frame_indices("full", 4)


@pytest.mark.parametrize("mode", ["bidirectional", "sparse_causal"])
@torch.no_grad()
def test_changing_a_frame_changes_only_frames_that_attend_to_it(mode):
    attn = layer()
    x = torch.randn(2 * M, TOKENS, DIM)  # two clips stacked, as the pipelines stack windows
    base = run(attn, mode, x)
    for k in range(M):
        y = x.clone()
        y[k] += torch.randn(TOKENS, DIM)
        changed = (run(attn, mode, y) - base).abs().amax(dim=(1, 2)) > 1e-6
        expected = dependents(mode, k)
        assert {j for j in range(2 * M) if changed[j]} == expected, (mode, k)


@torch.no_grad()
def test_anchor_ignores_other_frames_and_equals_plain_self_attention():
    attn = layer()
    x = torch.randn(M, TOKENS, DIM)
    a = M // 2
    out = run(attn, "bidirectional", x)
    alone = AttnProcessor2_0()(attn, x[a:a + 1])
    torch.testing.assert_close(out[a:a + 1], alone, rtol=1e-5, atol=1e-6)
    y = torch.randn_like(x)
    y[a] = x[a]
    torch.testing.assert_close(run(attn, "bidirectional", y)[a], out[a], rtol=0, atol=1e-6)


@torch.no_grad()
def test_cross_attention_layers_unchanged_and_bad_batch_rejected():
    torch.manual_seed(0)
    attn = Attention(query_dim=DIM, cross_attention_dim=8, heads=2, dim_head=8).eval()
    x, text = torch.randn(M, TOKENS, DIM), torch.randn(M, 3, 8)
    torch.testing.assert_close(CrossFrameAttnProcessor("bidirectional", M)(attn, x, text),
                               AttnProcessor2_0()(attn, x, text))
    with pytest.raises(ValueError, match="whole number"):
        run(layer(), "bidirectional", torch.randn(M + 1, TOKENS, DIM))


def test_installed_only_on_spatial_self_attention():
    from tiny import tiny_unet

    unet = tiny_unet()
    set_cross_frame_attention(unet, "bidirectional", 8)
    procs = unet.attn_processors
    assert all(isinstance(p, CrossFrameAttnProcessor) == n.endswith("attn1.processor") for n, p in procs.items())
    assert any(n.endswith("attn2.processor") for n in procs)
    reset_attention(unet)
    assert not any(isinstance(p, CrossFrameAttnProcessor) for p in unet.attn_processors.values())
