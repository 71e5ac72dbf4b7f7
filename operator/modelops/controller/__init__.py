"""The operator's runtime without kopf: per-deployment reconciles with their caches, locks,
retries and timers, the writes they make, and the model, analysis and retraining lookups
behind them. kopf reaches it only through modelops.handlers."""
