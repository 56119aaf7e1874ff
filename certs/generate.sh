#!/usr/bin/env bash
# Generate a local ECDSA P-256 certificate authority and a localhost server
# certificate signed by it, for wss-server's wss:// and https:// endpoints.
#
# Usage: certs/generate.sh [OUTDIR]     (default OUTDIR: the folder holding this script)
#
# Writes OUTDIR/ca.pem, OUTDIR/ca.key (CA, 10 years) and OUTDIR/cert.pem,
# OUTDIR/key.pem (leaf for localhost, 127.0.0.1, ::1; 825 days).
# Idempotent: when all four files exist, cert.pem verifies against ca.pem,
# key.pem matches cert.pem and neither certificate expires within a day,
# nothing is done. Otherwise all four files are regenerated.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUTDIR="${1:-$SCRIPT_DIR}"

CA_DAYS=3650
LEAF_DAYS=825
ONE_DAY=86400

command -v openssl >/dev/null 2>&1 || { echo "error: openssl not found in PATH" >&2; exit 1; }

mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"

CA_PEM="$OUTDIR/ca.pem"
CA_KEY="$OUTDIR/ca.key"
CERT_PEM="$OUTDIR/cert.pem"
KEY_PEM="$OUTDIR/key.pem"

# Public key of a certificate or private key, for comparing the two.
pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
pubkey_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }

existing_is_good() {
    [[ -s "$CA_PEM" && -s "$CA_KEY" && -s "$CERT_PEM" && -s "$KEY_PEM" ]] || return 1
    openssl verify -CAfile "$CA_PEM" "$CERT_PEM" >/dev/null 2>&1 || return 1
    openssl x509 -in "$CERT_PEM" -noout -checkend "$ONE_DAY" >/dev/null 2>&1 || return 1
    openssl x509 -in "$CA_PEM" -noout -checkend "$ONE_DAY" >/dev/null 2>&1 || return 1
    local a b
    a="$(pubkey_of_cert "$CERT_PEM")" && b="$(pubkey_of_key "$KEY_PEM")" || return 1
    [[ -n "$a" && "$a" == "$b" ]] || return 1
    a="$(pubkey_of_cert "$CA_PEM")" && b="$(pubkey_of_key "$CA_KEY")" || return 1
    [[ -n "$a" && "$a" == "$b" ]] || return 1
    return 0
}

if existing_is_good; then
    echo "certificates in $OUTDIR are present and valid; nothing to do"
    echo "  (delete $OUTDIR/{ca,cert}.pem to force regeneration)"
    exit 0
fi

# Random positive 128-bit serial (top bit cleared so the DER integer stays positive).
random_serial() {
    local hex
    hex="$(openssl rand -hex 16)"
    printf '0x%x%s' $(( 0x${hex:0:2} & 0x7f | 0x10 )) "${hex:2}"
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/wss-certs.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
umask 077

cat >"$WORK/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
prompt             = no
string_mask        = utf8only

[ req_dn ]
# Overridden with -subj on the command line.
CN = placeholder

[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[ v3_leaf ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF

echo "generating local CA and localhost certificate in $OUTDIR"

# 1. CA key + self-signed CA certificate (10 years).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve \
    -out "$WORK/ca.key"
openssl req -new -x509 -config "$WORK/openssl.cnf" -extensions v3_ca \
    -key "$WORK/ca.key" -sha256 -days "$CA_DAYS" -set_serial "$(random_serial)" \
    -subj "/O=wss-server development/CN=wss-server local CA" \
    -out "$WORK/ca.pem"

# 2. Leaf key + CSR, signed by the CA (825 days).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve \
    -out "$WORK/key.pem"
openssl req -new -config "$WORK/openssl.cnf" \
    -key "$WORK/key.pem" -sha256 \
    -subj "/O=wss-server development/CN=localhost" \
    -out "$WORK/leaf.csr"
openssl x509 -req -in "$WORK/leaf.csr" -sha256 -days "$LEAF_DAYS" \
    -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -set_serial "$(random_serial)" \
    -extfile "$WORK/openssl.cnf" -extensions v3_leaf \
    -out "$WORK/cert.pem" 2>/dev/null

# 3. Check what was made before installing it.
openssl verify -CAfile "$WORK/ca.pem" "$WORK/cert.pem" >/dev/null

chmod 600 "$WORK/ca.key" "$WORK/key.pem"
chmod 644 "$WORK/ca.pem" "$WORK/cert.pem"
for f in ca.key key.pem ca.pem cert.pem; do
    mv -f "$WORK/$f" "$OUTDIR/$f"
done

echo "wrote $CA_PEM (CA certificate, trust this one)"
echo "wrote $CA_KEY (CA private key, mode 600)"
echo "wrote $CERT_PEM (server certificate for localhost, 127.0.0.1, ::1)"
echo "wrote $KEY_PEM (server private key, mode 600)"
