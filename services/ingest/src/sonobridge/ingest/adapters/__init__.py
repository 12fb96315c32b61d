"""Ingest adapters: tables, repositories, spooling, DICOM parsing and rendering."""
