"""Data governance: retention and legal hold, data-subject requests, signed recordings, and
the exposure self-audit."""
