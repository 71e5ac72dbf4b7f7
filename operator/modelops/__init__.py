"""modelops: the delivery loop of machine-learning models on Kubernetes and KServe."""

__version__ = "0.1.0"
