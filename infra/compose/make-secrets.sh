#!/bin/sh
# Writes the Compose stack's secret files into infra/compose/secrets (mode 0700; the files 0644 so
# the containers' non-root users can read their bind mounts; the directory keeps others out).
# Existing files are kept: run it again after adding a function. Needs bin/pulsevault (make build;
# or PULSEVAULT=/path/to/pulsevault) and openssl. The public certificate: put yours at
# secrets/pulsevault-public-tls-crt and -key before running, or a self-signed one for PULSEVAULT_SERVER_NAME is made.
set -eu
cd "$(dirname "$0")"
umask 022
install -d -m 0700 secrets
rand() { head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }   # MinIO: 8-40 characters
put() { [ -s "secrets/$1" ] || { printf '%s' "$2" > "secrets/$1"; echo "wrote secrets/$1"; }; }

put minio-root-user pulsevault-root
put minio-root-password "$(rand)"
for n in bootstrap upload pulsevault upload-finalize transcode sign-url media videos audit-append; do
  put "pulsevault-s3-$n-access-key" "pulsevault-$n"
  put "pulsevault-s3-$n-secret-key" "$(rand)"
done
put pulsevault-jwt-secret "$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
put pulsevault-media-keys "k$(date +%Y%m%d)=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
put pulsevault-pulse-keys "k$(date +%Y%m%d)=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
[ -s secrets/pulsevault-audit-key ] || { "${PULSEVAULT:-../../bin/pulsevault}" audit keygen > secrets/pulsevault-audit-key; echo "wrote secrets/pulsevault-audit-key"; }
# MinIO and NATS are plain on the stack's private network: no private CA (the system roots).
put pulsevault-ca none
if [ ! -s secrets/pulsevault-public-tls-crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=${PULSEVAULT_SERVER_NAME:-localhost}" \
    -addext "subjectAltName=DNS:${PULSEVAULT_SERVER_NAME:-localhost}" \
    -keyout secrets/pulsevault-public-tls-key -out secrets/pulsevault-public-tls-crt 2>/dev/null
  echo "wrote a self-signed secrets/pulsevault-public-tls-crt (replace it with your CA's)"
fi
chmod 0644 secrets/*
