#!/usr/bin/env bash
# Installs the gateway as a service on this host (run as root), following deploy/README.md:
# a system user that owns the data directory, `gateway init` run as that user, the systemd unit.
# Idempotent: running it again keeps the data, the secrets and an existing configuration.
#
#   deploy/install.sh --recipient age1... [--recipient age1...] [--user consent-gateway] \
#       [--data-dir /var/lib/consent-gateway] [--sip-listen 0.0.0.0:5060] \
#       [--pbx sip:helpline@10.0.0.5:5060] [--workers 4] [--trunk 192.0.2.10] [--no-systemd]
#
# The repository stays where it is (e.g. /opt/consent-gateway, with ./scripts/setup.sh run
# there); the service user needs to read it and to run its .venv.
set -euo pipefail

user=consent-gateway
data_dir=/var/lib/consent-gateway
sip_listen=0.0.0.0:5060
pbx=sip:helpline@127.0.0.1:5070
workers=2
systemd=yes
init_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --user) user=$2; shift 2 ;;
        --data-dir) data_dir=$2; shift 2 ;;
        --sip-listen) sip_listen=$2; shift 2 ;;
        --pbx) pbx=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --recipient|--trunk|--dashboard-listen|--mode) init_args+=("$1" "$2"); shift 2 ;;
        --no-systemd) systemd=no; shift ;;
        *) echo "install: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "install: run as root" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
gateway="$repo/.venv/bin/gateway"
[ -x "$gateway" ] || { echo "install: $gateway missing: run $repo/scripts/setup.sh first" >&2; exit 1; }

# 1. The service user, with the data directory as its home (created here, owned by it, 0700).
#    No login shell, no password.
if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$data_dir" --create-home --shell /usr/sbin/nologin "$user"
fi
install -d -m 0700 -o "$user" -g "$user" "$data_dir"

# 2. The configuration, written and checked by `gateway init` run as that user (runuser is in
#    util-linux, on every Debian; sudo is not). Root never writes into the data directory.
as_user() { runuser -u "$user" -- "$@"; }
if [ ! -f "$data_dir/gateway.toml" ]; then
    as_user "$gateway" init --dir "$data_dir" --sip-listen "$sip_listen" --pbx "$pbx" \
        --workers "$workers" "${init_args[@]}"
fi

# 3. Debian's own kamailio.service (enabled by `apt-get install kamailio`) would hold *:5060:
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
