"""kopf registration. Importing this package registers the operator's handlers with kopf."""

from modelops.handlers import registration

__all__ = ["registration"]
