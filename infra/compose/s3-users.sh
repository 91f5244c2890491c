#!/bin/sh
# The Compose stack's s3-users service (compose.yaml), Kubernetes step 6 of infra/README.md: an
# S3 user per function (and bootstrap) whose policy is infra/policies/<name>.json, with the key
# pair from the Compose secret files pulsevault-s3-<name>-access-key / -secret-key. Idempotent:
# existing policies and users are updated. Runs in the MinIO image (mc).
set -eu
s=/run/secrets
mc alias set local http://minio:9000 "$(cat $s/minio-root-user)" "$(cat $s/minio-root-password)" >/dev/null
for name in bootstrap upload pulsevault upload-finalize transcode sign-url media videos audit-append; do
  user=$(cat "$s/pulsevault-s3-$name-access-key")
  mc admin policy create local "pulsevault-$name" "/policies/$name.json" >/dev/null
  mc admin user add local "$user" "$(cat "$s/pulsevault-s3-$name-secret-key")" >/dev/null
  mc admin policy attach local "pulsevault-$name" --user "$user" >/dev/null 2>&1 || true   # already attached
  echo "s3 user $user: policy pulsevault-$name"
done
