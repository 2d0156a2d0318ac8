"""glom-plugin: lookalike audience expansion (GLoM and the Yahoo graph-constraint system) for ML platforms."""

__version__ = "0.1.0"
