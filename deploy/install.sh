#!/usr/bin/env bash
# Installs the gateway as a service on this host (run as root), following deploy/README.md:
# a system user that owns the data directory, `gateway init` run as that user, the systemd unit.
# Idempotent: running it again keeps the data, the secrets and an existing configuration.
#
#   deploy/install.sh --recipient age1... [--recipient age1...] [--user consent-gateway] \
#       [--data-dir /var/lib/consent-gateway] [--sip-listen 0.0.0.0:5060] \
#       [--pbx sip:helpline@10.0.0.5:5060] [--workers 4] [--trunk 192.0.2.10] \
#       [--mode opt-out|opt-in] [--dashboard-listen 127.0.0.1:8080] \
#       [--index-url postgresql://...] [--cluster-key FILE] [--node-name NAME] [--peer HOST:PORT] \
#       [--worker-base-port PORT] [--metrics-listen HOST:PORT] [--rtp-port PORT] \
#       [--store-url s3://BUCKET/PREFIX] [--store-endpoint URL] [--store-region R] \
#       [--object-lock off|governance|compliance] [--no-systemd]
#
# Every flag is described in deploy/README.md. The repository stays where it is (e.g.
# /opt/consent-gateway, with ./scripts/setup.sh run there); the service user must be able to
# read it and run its .venv (this script checks).
set -euo pipefail

user=consent-gateway
data_dir=/var/lib/consent-gateway
sip_listen=0.0.0.0:5060
pbx=sip:helpline@127.0.0.1:5070
workers=2
systemd=yes
cluster_key=
init_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --user) user=$2; shift 2 ;;
        --data-dir) data_dir=$2; shift 2 ;;
        --sip-listen) sip_listen=$2; shift 2 ;;
        --pbx) pbx=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --recipient|--trunk|--dashboard-listen|--mode|--index-url|--node-name|--peer|--worker-base-port|\
        --metrics-listen|--rtp-port|--store-url|--store-endpoint|--store-region|--object-lock)
            init_args+=("$1" "$2"); shift 2 ;;
        --cluster-key) cluster_key=$2; shift 2 ;;
        --no-systemd) systemd=no; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "install: unknown argument $1 (see deploy/README.md for the flags)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "install: run as root" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
gateway="$repo/.venv/bin/gateway"
[ -x "$gateway" ] || { echo "install: $gateway missing: run $repo/scripts/setup.sh first" >&2; exit 1; }

# Without systemd as PID 1 (a container, a chroot, another init) there is no unit to install:
# say so and go on as with --no-systemd.
if [ "$systemd" = yes ] && [ ! -d "${SYSTEMD_RUN_DIR:-/run/systemd/system}" ]; then
    echo "install: this host was not booted with systemd (PID 1 is $(ps -p 1 -o comm= 2>/dev/null || echo '?')):" \
        "no unit is installed; start the gateway with your own service manager (the command is printed below)," \
        "or pass --no-systemd to say so" >&2
    systemd=no
fi

# 1. The service user, with the data directory as its home (created below, owned by it, 0700,
#    with nothing in it: no shell dotfiles copied from /etc/skel). No login shell, no password.
if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin "$user"
fi
install -d -m 0700 -o "$user" -g "$user" "$data_dir"

# 2. The service user must be able to run the gateway from this checkout: every directory above
#    it must be searchable, and .venv's interpreter reachable (one built on an interpreter under
#    root's home is not).
as_user() { runuser -u "$user" -- "$@"; }
if ! out=$(cd / && as_user "$gateway" --version 2>&1); then
    echo "install: the user $user cannot run $gateway: $out" >&2
    echo "install: .venv was built with $(readlink -f "$repo/.venv/bin/python"); put the checkout where $user can" \
        "read it (e.g. /opt/consent-gateway) and rebuild .venv with the system's Python:" \
        "rm -rf $repo/.venv && $repo/scripts/setup.sh" >&2
    exit 1
fi

# 3. The configuration, written and checked by `gateway init` run as that user (runuser is in
#    util-linux, on every Debian; sudo is not). Root never writes into the data directory; the
#    first node's cluster key, given to a further node, is copied in as the user's own file.
if [ -n "$cluster_key" ]; then
    [ -r "$cluster_key" ] || { echo "install: cannot read the cluster key $cluster_key" >&2; exit 1; }
    install -d -m 0700 -o "$user" -g "$user" "$data_dir/secrets"
    if [ ! -f "$data_dir/secrets/cluster.key" ]; then
        (umask 077 && as_user tee "$data_dir/secrets/cluster.key" < "$cluster_key" > /dev/null)
    fi
    init_args+=(--cluster-key "$data_dir/secrets/cluster.key")
fi
if [ ! -f "$data_dir/gateway.toml" ]; then
    (cd / && as_user "$gateway" init --dir "$data_dir" --sip-listen "$sip_listen" --pbx "$pbx" \
        --workers "$workers" "${init_args[@]}")
fi

# 4. Debian's own kamailio.service (enabled by `apt-get install kamailio`) would hold *:5060:
#    the gateway runs Kamailio itself, as its child, with a config rendered from gateway.toml.
if [ "$systemd" = yes ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet kamailio.service 2>/dev/null || systemctl is-active --quiet kamailio.service 2>/dev/null; then
        echo "install: disabling Debian's kamailio.service (the gateway runs Kamailio as its own child)" >&2
        systemctl disable --now kamailio.service
    fi
    sed -e "s|/opt/consent-gateway|$repo|g" -e "s|/var/lib/consent-gateway|$data_dir|g" \
        -e "s|^User=.*|User=$user|" -e "s|^Group=.*|Group=$user|" \
        "$repo/deploy/consent-gateway.service" > /etc/systemd/system/consent-gateway.service
    systemctl daemon-reload
    echo "install: next: runuser -u $user -- $gateway --config $data_dir/gateway.toml user add NAME --role admin"
    echo "         then: systemctl enable --now consent-gateway"
else
    echo "install: next: runuser -u $user -- $gateway --config $data_dir/gateway.toml user add NAME --role admin"
    echo "         then: runuser -u $user -- $gateway --config $data_dir/gateway.toml run"
fi
