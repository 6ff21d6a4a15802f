#!/usr/bin/env bash
# Installs everything the gateway and its tests need on a fresh Debian machine (run as root):
# system packages with apt-get, Python packages with pip into .venv/ at the repository root.
# Idempotent and quiet when there is nothing to do; the README's two commands both call it.
set -euo pipefail
cd "$(dirname "$0")/.."

# age: the reference CLI our files must decrypt with. ffmpeg: pydub and compressed export
# (through pipes only). strace: the "no plaintext on disk" harness. sip-tester: sipp and its
# RFC 2833 and G.711 pcaps, for the call tests. kamailio: the node's front door. chromium: the
# dashboard's browser tests (Playwright drives it; it never downloads a browser), with a font
# for its screenshots.
# postgresql: the index several nodes share (the tests run a throwaway cluster of it).
# kamailio-tls-modules: TLS at the front door. tshark: the tests check the wire for SIP and
# audio in clear.
# nodejs (with npm): the npm age-encryption package, an independent implementation of age (with its
# post-quantum recipients) that the tests check our files against.
APT_PACKAGES=(age ffmpeg strace python3-venv sip-tester kamailio kamailio-tls-modules tshark chromium fonts-liberation postgresql nodejs)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]}; run as root or: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The system's interpreter first: a service user must be able to run .venv/bin/python, and an
# interpreter under root's home (pyenv) is out of its reach (deploy/install.sh checks it).
pick_python() {
    for cand in /usr/bin/python3.12 /usr/bin/python3.11 /usr/bin/python3 python3.12 python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys, venv; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
            echo "$cand"
            return
        fi
    done
    echo "setup: need CPython 3.11 or 3.12 (pjsua2-python has no wheel for newer)" >&2
    exit 1
}

if [ ! -x .venv/bin/python ]; then
    py=$(pick_python)
    echo "setup: creating .venv with $($py --version)" >&2
    "$py" -m venv .venv
fi

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    echo "setup: installing Python packages into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi

# The JavaScript packages, exactly as package-lock.json pins them (never committed: node_modules/).
js_stamp=node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)
if [ ! -f "$js_stamp" ]; then
    if ! command -v npm >/dev/null 2>&1; then  # Debian packages npm apart from nodejs
        [ "$(id -u)" -eq 0 ] || { echo "setup: npm is missing: apt-get install npm" >&2; exit 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    echo "setup: installing JavaScript packages (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    touch "$js_stamp"
fi

# The reviewer's page decrypts in a Web Worker with the age-encryption package installed above:
# esbuild (pinned in the same lock file) bundles it into one file the dashboard serves. Built
# here, on the machine that runs it, from the locked sources; never committed, never from a CDN.
bundle=gateway/dashboard/static/bundle/review-worker.js
bundle_stamp=gateway/dashboard/static/bundle/.built-$(cat package-lock.json gateway/dashboard/js/*.js | sha256sum | cut -c1-16)
if [ ! -f "$bundle_stamp" ] || [ ! -f "$bundle" ]; then
    rm -rf gateway/dashboard/static/bundle
    node_modules/.bin/esbuild gateway/dashboard/js/review-worker.js --bundle --format=iife \
        --target=chrome110,firefox115,safari16 --legal-comments=eof --log-level=warning \
        --banner:js="// Built by scripts/setup.sh from gateway/dashboard/js/review-worker.js and the npm packages package-lock.json pins: age-encryption (BSD-3-Clause), @noble/* and @scure/base (MIT)." \
        --outfile="$bundle"
    touch "$bundle_stamp"
fi
