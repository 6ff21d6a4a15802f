"""The node: a supervisor that runs Kamailio in front of a pool of pjsua2 workers."""
