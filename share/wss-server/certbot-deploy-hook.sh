#!/bin/sh
# certbot (or any ACME client) deploy hook for wss-server: copies the renewed certificate and
# key where the service reads them and sends SIGHUP (systemctl reload). wss-server then loads
# them for new connections without dropping open ones; if they are unusable it keeps the old
# ones and logs why. Short-lived certificates (6-day ACME profiles, say) renew this way as often
# as needed: a reload costs one file read and never touches connections.
#
# Install: cp certbot-deploy-hook.sh /etc/letsencrypt/renewal-hooks/deploy/wss-server.sh
#          chmod 755 /etc/letsencrypt/renewal-hooks/deploy/wss-server.sh
# or:      certbot renew --deploy-hook /usr/local/share/wss-server/certbot-deploy-hook.sh
# certbot sets RENEWED_LINEAGE (e.g. /etc/letsencrypt/live/example.com). Other ACME clients:
# pass the directory holding fullchain.pem and privkey.pem as the first argument.
set -eu

lineage=${RENEWED_LINEAGE:-${1:-}}
[ -n "$lineage" ] || { echo "wss-server deploy hook: no RENEWED_LINEAGE and no directory given" >&2; exit 1; }
dest=${WSS_SERVER_TLS_DIR:-/etc/wss-server/tls}
group=${WSS_SERVER_TLS_GROUP:-wss-server-tls}

mkdir -p "$dest"
# Write beside the old files, then rename: the server never reads a half-written key.
for f in fullchain.pem privkey.pem; do
    install -m 0640 -g "$group" "$lineage/$f" "$dest/.$f.new"
    mv -f "$dest/.$f.new" "$dest/$f"
done

if [ -n "${WSS_SERVER_PID:-}" ]; then
    kill -HUP "$WSS_SERVER_PID"           # not under systemd: the caller names the process
else
    systemctl reload wss-server.service   # ExecReload sends SIGHUP
fi
