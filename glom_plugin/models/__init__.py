"""Lookalike models. Each implements ``LookalikeModel`` (fit on the graph, score a campaign);
``registry.py`` maps names to classes so the harness, MLflow and the service treat them alike."""
