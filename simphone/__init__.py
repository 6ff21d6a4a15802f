"""Simulated telephony peers for the demo, the tests and the benchmarks: not part of the
gateway. `python -m simphone.phone caller|pbx ...` is a pjsua2 phone in its own process,
talking SIP and RTP to the gateway like any real peer."""
