"""Conditions computed from a video: object masks (edit anything), edge maps and, as they arrive, pose and
depth maps. Each module turns frames (N, H, W, 3) uint8 into per-frame maps; none knows about UNets."""
