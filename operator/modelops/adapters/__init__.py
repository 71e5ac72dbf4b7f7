"""Thin I/O behind small interfaces: the Kubernetes API, the MLflow registry, Prometheus."""
