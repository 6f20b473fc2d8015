"""playback service."""
