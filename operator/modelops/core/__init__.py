"""Pure decisions: no I/O, no clock, no framework. Time and observations are arguments."""
