"""A pjsua2 endpoint on the null sound device, quiet, for the child processes that test media
ports against a real conference bridge (ports_child.py, clock_child.py)."""

import pjsua2 as pj


def null_endpoint() -> pj.Endpoint:
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.logConfig.level = 0
    cfg.logConfig.consoleLevel = 0
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    ep.libStart()
    return ep
