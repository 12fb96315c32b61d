"""Domain errors raised by the inference core; transports map them to status codes."""


class InferenceError(Exception):
    """Base of every error the inference core raises on purpose."""


class Overloaded(InferenceError):
    """The request queue is full; the caller should retry later (UNAVAILABLE / 503)."""


class ModelNotFound(InferenceError):
    """No model (or version) with that name exists in the registry (NOT_FOUND / 404)."""


class ModelNotLoaded(InferenceError):
    """The model exists but is not loaded in this process (FAILED_PRECONDITION / 409)."""


class ModelIntegrityError(InferenceError):
    """A model file does not match the hash its card states (INTERNAL / 500)."""


class InvalidImage(InferenceError):
    """The submitted bytes are not a decodable image or DICOM instance (INVALID_ARGUMENT / 400)."""


class InvalidInput(InferenceError):
    """A tensor does not match the model's input spec (INVALID_ARGUMENT / 400)."""
