"""SonoBridge maintenance service."""
