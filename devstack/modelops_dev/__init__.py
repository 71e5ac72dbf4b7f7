"""The local stack for the demo and the end-to-end tests. Never imported by the operator."""
