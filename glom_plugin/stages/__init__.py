"""Stages: one module per pipeline stage. Each reads its inputs from the run directory, checks them
(manifests), calls the core (models, graph, text, expand) and the platform adapters, and writes its
artifact atomically. The only layer that knows the order; the core never imports it."""
