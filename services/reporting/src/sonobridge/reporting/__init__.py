"""SonoBridge reporting service."""
