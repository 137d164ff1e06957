"""toposweep: topology of neural-network loss landscapes across hyperparameter sweeps."""

__version__ = "0.1.0"
