"""Model serving: ONNX Runtime sessions, micro-batching and the model registry."""
