#!/usr/bin/env bash
# Regenerates the synthetic prompts from manifest.toml with espeak-ng and sox (Debian packages
# espeak-ng, sox). Output: 16 kHz mono 16-bit WAV; the gateway converts to its clock rate.
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY' | while IFS=$'\t' read -r lang file text; do
import tomllib
for p in tomllib.load(open("manifest.toml", "rb"))["prompt"]:
    print(p["language"], p["file"], p["transcript"], sep="\t")
PY
    mkdir -p "$(dirname "$file")"
    espeak-ng -v "$lang" -s 155 --stdout "$text" | sox -q -t wav - -r 16000 -c 1 -b 16 "$file" norm -3
    echo "wrote $file"
done
