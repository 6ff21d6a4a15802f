"""Consent: the caller's decision, as a pure state machine, and its provable receipt."""
