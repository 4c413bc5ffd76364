"""The bundled demo model: a tiny text-to-image + text-to-video diffusion model of the shapes world.

`python -m genl.demo train --out assets/demo-model` trains it from scratch on frames and clips rendered
by `genl.demo.world` (VAE, then text encoder + UNet on single frames, then AnimateDiff motion modules on
16-frame clips) and saves one AnimateDiff-format folder that serves every pipeline (see genl/models.py).
`python -m genl.demo evaluate` measures how often `genl.demo.world_parse` reads generated frames as prompted.
"""
