"""Recordings as data: the recorder engine that streams a call's two channels into age
encryption (recorder.py, aligner.py, wav.py), per-recording keys (keys.py), signatures over a
finished recording's manifest (signing.py), decryption to WAV or a compressed format through
pipes (export.py), and the checks `recordings verify` runs (verify.py). No audit entries: the
application layer (gateway/app) writes those."""
