"""Shared plumbing for SonoBridge services."""
