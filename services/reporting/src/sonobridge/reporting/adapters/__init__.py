"""Reporting adapters: tables, repositories, PDF, FHIR and webhook delivery."""
