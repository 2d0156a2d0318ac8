"""Ingestion: readers for publishers' layouts, id hashing, rejects, normalized tables, synthetic default."""
