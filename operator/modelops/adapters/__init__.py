"""Thin I/O behind small interfaces: the Kubernetes API (MLflow and Prometheus come later)."""
