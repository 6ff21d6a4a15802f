#!/usr/bin/env bash
# Regenerates the synthetic prompts from manifest.toml with espeak-ng and sox (Debian packages
# espeak-ng, sox). Output: 16 kHz mono 16-bit WAV; the gateway converts to its clock rate.
#   ./generate.sh              every prompt
#   ./generate.sh sv/menu ...  only these (LANGUAGE/ID); raise their `version` in the manifest
# The synthetic voice differs a little between espeak-ng builds: a regenerated file is new
# audio (a new SHA-256 in the receipts), so regenerate only what you changed.
set -euo pipefail
cd "$(dirname "$0")"
python3 - "$@" <<'PY' | while IFS=$'\t' read -r lang file text; do
import sys
import tomllib
wanted = set(sys.argv[1:])
for p in tomllib.load(open("manifest.toml", "rb"))["prompt"]:
    if not wanted or f'{p["language"]}/{p["id"]}' in wanted:
        print(p["language"], p["file"], p["transcript"], sep="\t")
PY
    mkdir -p "$(dirname "$file")"
    espeak-ng -v "$lang" -s 155 --stdout "$text" | sox -q -t wav - -r 16000 -c 1 -b 16 "$file" norm -3
    echo "wrote $file"
done
