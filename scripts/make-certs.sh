#!/usr/bin/env bash
# Makes a CA and a certificate for each node URL, for mutual TLS between Nexus peers
# (-peer-cert-file, -peer-key-file, -peer-trusted-ca-file).
#
#   scripts/make-certs.sh [-d DIR] [--host-san] [--days N] https://HOST:PORT ...
#
# - DIR (default ./certs) receives ca.pem and ca-key.pem (made once: later runs reuse them, so a
#   node added later gets a certificate from the same CA), and for each URL
#   node-<host>-<port>.pem and node-<host>-<port>-key.pem.
# - Each node certificate names its URL as a URI subject alternative name, which identifies
#   exactly that node even when several share a host. --host-san also names the URL's host (DNS
#   or IP), as other TLS tools expect; a host name then identifies every node on that host.
# - Certificates allow TLS server and client use (a node is both to its peers) and are valid for
#   N days (default 825); the CA for 10 years. Keys are EC P-256, readable by the owner only.
#
# Keep ca-key.pem away from the nodes: whoever holds it can make certificates the cluster trusts.
set -euo pipefail

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

dir=./certs
host_san=0
days=825
urls=()
while [ $# -gt 0 ]; do
  case "$1" in
    -d) [ $# -ge 2 ] || usage; dir=$2; shift 2 ;;
    --host-san) host_san=1; shift ;;
    --days) [ $# -ge 2 ] || usage; days=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "make-certs: unknown option $1" >&2; usage ;;
    *) urls+=("$1"); shift ;;
  esac
done
[ ${#urls[@]} -gt 0 ] || { echo "make-certs: give at least one node URL, e.g. https://127.0.0.1:9021" >&2; usage; }
command -v openssl >/dev/null || { echo "make-certs: openssl is not installed" >&2; exit 1; }

for url in "${urls[@]}"; do
  if [[ ! "$url" =~ ^https://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]+)$ ]]; then
    echo "make-certs: $url is not a node URL like https://127.0.0.1:9021 (https, a host, a port, no path)" >&2
    exit 2
  fi
done

umask 077
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Runs openssl quietly; shows what it said when it fails.
ossl() {
  openssl "$@" 2>"$tmp/err" || { echo "make-certs: openssl $1 failed:" >&2; cat "$tmp/err" >&2; exit 1; }
}

if [ ! -f "$dir/ca.pem" ]; then
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" -days 3650 -subj "/CN=Nexus peer CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  echo "made the CA: $dir/ca.pem (key $dir/ca-key.pem)"
fi

for url in "${urls[@]}"; do
  [[ "$url" =~ ^https://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]+)$ ]]
  host=${BASH_REMATCH[1]}
  port=${BASH_REMATCH[2]}
  bare=${host#[}
  bare=${bare%]}
  san="URI:$url"
  if [ "$host_san" = 1 ]; then
    if [[ "$bare" =~ ^[0-9.]+$ || "$bare" == *:* ]]; then san="$san,IP:$bare"; else san="$san,DNS:$bare"; fi
  fi
  name="node-${bare//:/_}-$port"
  cat >"$tmp/ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EOF
  ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$name-key.pem" -out "$tmp/csr" -subj "/CN=nexus node $bare port $port"
  ossl x509 -req -in "$tmp/csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$tmp/ext" \
    -out "$dir/$name.pem"
  echo "$url: -peer-cert-file $dir/$name.pem -peer-key-file $dir/$name-key.pem -peer-trusted-ca-file $dir/ca.pem"
done
