"""Encoders: the one timm encoder factory and the starting weights it loads."""
