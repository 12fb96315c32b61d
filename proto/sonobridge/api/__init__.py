"""Generated SonoBridge contracts (do not edit by hand; run make protos)."""
