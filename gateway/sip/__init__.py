"""The SIP vocabulary, pure: text in, values out. No pjsua2, no files, no sockets.

Headers, URIs and INVITE parties (message), SRTP policy and what a hop or an SDP offers
(secure), DTMF methods (dtmf), the in-band key detector (tones) and SIPREC offers (siprec).
The configuration reads its SIP settings with these; the pjsua2 worker (gateway.telephony)
and the node's Kamailio front door (gateway.supervisor) act on them.
"""
