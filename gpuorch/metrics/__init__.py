"""Prometheus metrics of the API, the workers and the GPU lifecycle, and how each process serves them."""
