"""One-shot tuning with clip identifiers (genl/tuning, genl/pipelines/tuned.py) on tiny components, offline."""
import numpy as np
import pytest
import torch
from tiny import tiny_components

from genl.codenoise import make_windows
from genl.pipelines.common import encode_frames, timeline_conditions
from genl.pipelines.tuned import LongTunedPipeline, identified_denoiser, identifier_guidance
from genl.sampling import Cancelled
from genl.timeline import Timeline
from genl.tuning.identifiers import ClipIdentifiers
from genl.tuning.settings import TuneSettings
from genl.tuning.store import TuningStore
from genl.plan import CoDenoisePlan
from genl.settings import CoDenoiseSettings
from genl.tuning.train import CHECKPOINT_FILE, clip_loss, diffusion_loss, frame_text, make_optimizer, tune
from genl.tuning.weights import load_tuned, prepare_unet, read_meta, trained_state

SOURCE = Timeline.parse("0-5: a red circle moving right | 6-11: a blue square moving left")


def tiny_video(num_frames=12, size=32):
    """A bright square moving right over a dark gradient: motion a temporal model can learn."""
    y, x = np.mgrid[0:size, 0:size]
    frames = []
    for f in range(num_frames):
        img = np.stack([x * 4, y * 4, np.full_like(x, 60)], -1).astype(np.uint8)
        left = 2 + f * 2
        img[10:20, left:left + 8] = (230, 40, 40) if f < 6 else (40, 40, 230)
        frames.append(img)
    return np.stack(frames)


def settings(**kw):
    base = dict(video="tiny.mp4", prompt="a red circle", model="tiny", clip_length=4, stride=2, width=32, height=32,
                batch_size=2, epochs=50, learning_rate=2e-3, identifier_lr=1e-2, checkpoint_every=2,
                gradient_checkpointing=True, plateau_patience=0, seed=0)
    base.update(kw)
    return TuneSettings(**base)


def test_settings_validate_with_plain_messages():
    settings().validate()
    with pytest.raises(ValueError, match="tuning method"):
        settings(method="dreambooth").validate()
    with pytest.raises(ValueError, match="Identifier dropout"):
        settings(identifier_dropout=1.0).validate()
    with pytest.raises(ValueError, match="upload the video"):
        settings(video="").validate()
    assert settings(batch_size=5).lr() == pytest.approx(2e-3 * 5)  # the paper's lr scaled by the batch


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_few_steps_reduce_the_loss(tmp_path, method):
    frames = tiny_video()
    torch.manual_seed(0)
    before = tune(tiny_components(), frames, SOURCE, settings(method=method, max_steps=1, learning_rate=1e-12,
                                                              identifier_lr=0.0), tmp_path / "before")
    torch.manual_seed(0)
    tune(tiny_components(), frames, SOURCE, settings(method=method, max_steps=12, learning_rate=5e-3), tmp_path / "after")
    losses = {}
    for name in ("before", "after"):
        comps = tiny_components()
        ids, _ = load_tuned(tmp_path / name, comps["unet"])
        losses[name] = clip_loss(comps, comps["unet"], ids, frames, SOURCE, seed=1)
    assert before["step"] == 1
    assert losses["after"] < 0.95 * losses["before"], losses


def _prepared(clip_length=4):
    comps = tiny_components()
    frames = tiny_video()
    windows = make_windows(len(frames), clip_length, 2)
    params = prepare_unet(comps["unet"], "lora", 4, True, clip_length)
    text = frame_text(comps["tokenizer"], comps["text_encoder"], SOURCE, windows, len(frames), "cpu")
    ids = ClipIdentifiers(windows, len(frames), text.shape[-1], 2, std=1.0, generator=torch.Generator().manual_seed(0))
    latents = encode_frames(comps["vae"], frames, "cpu").float()
    return comps, params, ids, text, latents, windows


def test_identifier_gradients_and_a_dropped_identifier_is_not_updated():
    comps, params, ids, text, latents, windows = _prepared()
    opt = make_optimizer(settings(), params, list(ids.parameters()), torch.device("cpu"))

    def step(dropped):
        loss = diffusion_loss(comps["unet"], comps["scheduler"], latents, [0, 1], windows, text, ids,
                              torch.tensor(dropped), torch.Generator().manual_seed(3), None)
        opt.zero_grad(set_to_none=True)
        loss.backward()

    step([False, False])  # both identifiers get gradients (and AdamW momentum)
    assert ids.embeddings[0].grad.abs().sum() > 0 and ids.embeddings[1].grad.abs().sum() > 0
    opt.step()
    kept = ids.embeddings[1].detach().clone()
    moved = ids.embeddings[0].detach().clone()
    step([False, True])  # clip 1 trains without e^1
    assert ids.embeddings[0].grad.abs().sum() > 0
    assert ids.embeddings[1].grad is None
    opt.step()
    assert torch.equal(ids.embeddings[1].detach(), kept)  # no update, not even from momentum
    assert not torch.equal(ids.embeddings[0].detach(), moved)


def test_checkpoint_round_trips(tmp_path):
    root, tmp_path = tmp_path, tmp_path / "tuning-1"
    frames = tiny_video()
    comps = tiny_components()
    tune(comps, frames, SOURCE, settings(max_steps=3), tmp_path)
    fresh = tiny_components()
    ids, meta = load_tuned(tmp_path, fresh["unet"])
    saved, loaded = trained_state(comps["unet"]), dict(fresh["unet"].named_parameters())
    assert any("lora_" in k for k in saved) and any("attn_temp" in k for k in saved)
    assert all(torch.equal(saved[k], loaded[k].detach()) for k in saved)
    assert meta["step"] == 3 and meta["finished"] and len(meta["losses"]) == 3
    assert len(ids) == len(make_windows(12, 4, 2)) and ids.tokens == 1
    blob = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=False)
    assert blob["state"]["step"] == 3 and blob["optimizer"]["state"]
    store = TuningStore(root)
    assert [e["key"] for e in store.list()] == [tmp_path.name]


def test_cancel_keeps_a_usable_checkpoint_and_resume_continues_the_step_count(tmp_path):
    frames = tiny_video()
    full = tune(tiny_components(), frames, SOURCE, settings(max_steps=5, identifier_dropout=0.5), tmp_path / "full")
    steps = []

    def cancel_after_3():
        return len(steps) >= 3

    with pytest.raises(Cancelled):
        tune(tiny_components(), frames, SOURCE, settings(max_steps=5, identifier_dropout=0.5), tmp_path / "cut",
             progress=lambda e: steps.append(e), is_cancelled=cancel_after_3)
    meta = read_meta(tmp_path / "cut")
    assert meta["step"] == 3 and not meta["finished"]
    assert set(steps[0]) == {"stage", "step", "total", "loss", "rate", "eta"} and steps[-1]["total"] == 5
    load_tuned(tmp_path / "cut", tiny_components()["unet"])  # the cancelled tuning is usable as it is

    resumed = []
    out = tune(tiny_components(), frames, SOURCE, settings(max_steps=5, identifier_dropout=0.5), tmp_path / "cut",
               progress=lambda e: resumed.append(e["step"]))
    assert resumed == [4, 5] and out["step"] == 5
    np.testing.assert_allclose(out["losses"], full["losses"], rtol=1e-4)  # same run as without the break


def test_guidance_with_identifiers_matches_the_paper_formula():
    comps, _, ids, _, _, windows = _prepared()
    unet = comps["unet"].eval()
    text = timeline_conditions(comps["tokenizer"], comps["text_encoder"], SOURCE, CoDenoisePlan(12, 4, 2),
                               device="cpu", dtype=torch.float32, use_cfg=True, per_frame=True)
    g = 4.0
    denoise = identified_denoiser(unet, text, ids, lambda w: ids.mixed(ids.for_window(w, 12)), g)
    x = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    i, t = 2, torch.tensor(500)
    with torch.no_grad():
        got = denoise(x, t, [windows[i]])
        images = x[0].permute(1, 0, 2, 3)
        rows = torch.arange(*windows[i])
        e = ids.embeddings[i].detach().expand(4, -1, -1)
        eps_c = unet(images, t, encoder_hidden_states=torch.cat([text.frames[0][rows], e], 1)).sample
        eps_u = unet(images, t, encoder_hidden_states=torch.cat([text.frames[1][rows], torch.zeros_like(e)], 1)).sample
    w = g - 1
    expected = (1 + w) * eps_c - w * eps_u
    torch.testing.assert_close(got[0].permute(1, 0, 2, 3), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(identifier_guidance(eps_c, eps_u, w), expected)
    assert not torch.allclose(eps_c, unet(images, t, encoder_hidden_states=torch.cat(
        [text.frames[0][rows], torch.zeros_like(e)], 1)).sample)  # e^i changes the prediction


def test_windows_between_training_clips_mix_the_nearest_identifiers():
    ids = ClipIdentifiers(make_windows(12, 4, 2), 12, 8, 1)
    assert ids.for_window((2, 6), 12).tolist() == [0, 1, 0, 0, 0]  # an exact training clip
    assert ids.for_window((1, 5), 12).tolist() == pytest.approx([0.5, 0.5, 0, 0, 0])
    assert ids.for_window((1, 5), 12, "nearest").sum() == 1
    assert ids.for_window((4, 12), 24).tolist() == pytest.approx([0, 0.875, 0.125, 0, 0])  # centre 7.5 -> 3.75 of 12


def test_tuned_pipeline_runs_end_to_end(tmp_path):
    frames = tiny_video()
    tune(tiny_components(), frames, SOURCE, settings(max_steps=2), tmp_path)
    pipe = LongTunedPipeline.from_tuning(tmp_path, tiny_components())
    edit = Timeline.parse("0-11: a green star")
    with_ids = pipe(edit, num_inference_steps=2, height=32, width=32, seed=1)
    without = pipe(edit, num_inference_steps=2, height=32, width=32, seed=1, use_identifiers=False)
    assert with_ids.frames.shape == (12, 32, 32, 3) and with_ids.frames.dtype == np.uint8
    assert not torch.allclose(with_ids.latents, without.latents)
    stages = []
    inverted = pipe(edit, num_inference_steps=2, source_frames=frames, callback=lambda e: stages.append(e["stage"]))
    assert inverted.frames.shape == frames.shape and stages[:2] == ["inversion", "inversion"]
    # its temporal attention wants M-frame clips: disjoint moving clips (shorter at the ends) are refused
    with pytest.raises(ValueError, match="temporal layers"):
        pipe(edit, num_inference_steps=2, height=32, width=32, seed=1,
             codenoise=CoDenoiseSettings(clip_length=4, stride=4, schedule="partitioned"))
