"""Model output <-> x0 <-> epsilon, in one place (DDPM/DDIM notation, a = alpha-bar_t).

    x_t = sqrt(a) x0 + sqrt(1 - a) eps,      v = sqrt(a) eps - sqrt(1 - a) x0

`kind` is the scheduler's `prediction_type`: "epsilon" (the model predicts eps), "v_prediction" or
"sample" (it predicts x0). The expressions are kept in the order they were first written so results stay
bit-identical across the code that shares them (sampling previews, inversion, the smoothness penalty).
"""
from __future__ import annotations

import torch

KINDS = ("epsilon", "v_prediction", "sample")


def _unknown(kind: str) -> ValueError:
    return ValueError(f"Unsupported prediction type '{kind}'. Expected one of: {', '.join(KINDS)}.")


def x0_from_output(out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, kind: str) -> torch.Tensor:
    """The clean-latent estimate x0 from a model output at x_t."""
    if kind == "epsilon":
        return (x - (1 - a).sqrt() * out) / a.sqrt()
    if kind == "v_prediction":
        return a.sqrt() * x - (1 - a).sqrt() * out
    if kind == "sample":
        return out
    raise _unknown(kind)


def eps_from_output(out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, kind: str) -> torch.Tensor:
    """The noise estimate eps from a model output at x_t."""
    if kind == "epsilon":
        return out
    if kind == "v_prediction":
        return a.sqrt() * out + (1 - a).sqrt() * x
    if kind == "sample":
        return eps_from_x0(out, x, a)
    raise _unknown(kind)


def eps_from_x0(x0: torch.Tensor, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return (x - a.sqrt() * x0) / (1 - a).sqrt()


def output_from_x0(x0: torch.Tensor, x: torch.Tensor, a: torch.Tensor, kind: str) -> torch.Tensor:
    """The model output that would have given x0 at x_t (so a changed x0 can be handed to the scheduler)."""
    if kind == "epsilon":
        return eps_from_x0(x0, x, a)
    if kind == "v_prediction":
        return a.sqrt() * eps_from_x0(x0, x, a) - (1 - a).sqrt() * x0
    if kind == "sample":
        return x0
    raise _unknown(kind)
