"""Retraining (pure): triggers, cooldown and backoff, the Job from the template, the candidate
it registers."""
