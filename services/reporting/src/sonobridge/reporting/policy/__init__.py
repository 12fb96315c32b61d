"""The routing policy shipped with the service (used when no policy file is configured)."""
