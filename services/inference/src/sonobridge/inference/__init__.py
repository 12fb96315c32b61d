"""SonoBridge inference service."""
