"""The rollout state machine and everything around it (pure): observing KServe, the objects
a status implies, traffic, readiness, promotion, rollback, monitoring, wake-ups."""
