"""Test-support builders (synthetic data with known structure); imported by tests, never by the package."""
