"""`python -m gateway.config example`: print deploy/gateway.toml.example."""

import sys

from . import example

if sys.argv[1:] != ["example"]:
    sys.exit("usage: python -m gateway.config example")
sys.stdout.write(example())
