"""Seed list -> lookalikes: similarity aggregation over seeds, ANN index, explanations."""
