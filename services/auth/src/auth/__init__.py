"""auth service."""
