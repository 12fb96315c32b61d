"""Transports of the inference service: gRPC, REST and the ExamCompleted consumer."""
