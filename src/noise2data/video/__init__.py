"""Video: clips (T, H, W, C) generated, continued and interpolated by one frame-masked flow model."""
