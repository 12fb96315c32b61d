"""Image decoding (JPEG, PNG, DICOM) and preprocessing into model tensors."""
