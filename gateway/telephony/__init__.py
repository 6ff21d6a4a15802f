"""Telephony: the pjsua2 worker (SIP legs, media ports, the B2BUA call flow) and its pure helpers."""
