"""Domain errors raised by the inference core; they are Problems, so transports map them."""

from sonobridge.common import problems


class InferenceError(problems.Problem):
    """Base of every error the inference core raises on purpose (a model run failed)."""

    status, title, type_slug = 500, "Inference failed", "inference-failed"


class Overloaded(problems.Unavailable, InferenceError):
    """The request queue is full; the caller should retry later (UNAVAILABLE / 503)."""


class ModelNotFound(problems.NotFound, InferenceError):
    """No model (or version) with that name exists in the registry (NOT_FOUND / 404)."""


class ModelNotLoaded(problems.Unavailable, InferenceError):
    """The model exists but is not loaded in this replica (UNAVAILABLE / 503: try another)."""


class ModelIntegrityError(InferenceError):
    """A model file does not match the hash its card states (500)."""

    title, type_slug = "Model integrity", "model-integrity"


class InvalidImage(problems.InvalidInput, InferenceError):
    """The submitted bytes are not a decodable image or DICOM instance (INVALID_ARGUMENT / 422)."""


class NoPixelData(InvalidImage):
    """A DICOM object without pixels by nature (a report, a waveform): nothing to look at."""


class InvalidInput(problems.InvalidInput, InferenceError):
    """A tensor does not match the model's input spec (INVALID_ARGUMENT / 422)."""
