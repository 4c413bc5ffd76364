"""Gen-L Studio engine: temporal co-denoising of long videos with short-video diffusion models."""
__version__ = "0.1.0"
