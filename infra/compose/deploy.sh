#!/bin/sh
# The Compose stack's deploy service (compose.yaml): what pulsevault-deploy.service does on one
# host. It logs faas-cli in to the provider (the provider's password file, on the shared data
# volume), creates or updates every function secret from the Compose secret files in
# /run/secrets, and deploys stack.yml. Deployments live in the provider's memory, so it then
# watches: when the provider comes back without functions (it restarted), it deploys again.
# DEPLOY_* override the container's paths (tests/compose_test.go runs it against a real provider).
set -eu
gw=http://127.0.0.1:8080
gw=${DEPLOY_GATEWAY:-$gw}
pw=${DEPLOY_PASSWORD_FILE:-/var/lib/pulsevault/gateway/basic-auth-password}
secrets=${DEPLOY_SECRETS:-/run/secrets}
stack=${DEPLOY_STACK:-/etc/pulsevault/stack.yml}
export HOME=${DEPLOY_HOME:-/tmp} OPENFAAS_URL=$gw
cd "$(dirname "$stack")"   # faas-cli reads template/ beside the stack file

deploy() {
  until [ -s "$pw" ] && faas-cli login -g "$gw" -u admin --password-stdin < "$pw" >/dev/null; do sleep 2; done
  for f in "$secrets"/pulsevault-*; do
    name=${f##*/}
    case $name in pulsevault-s3-bootstrap-*) continue ;; esac   # bootstrap's, no function's
    faas-cli secret create "$name" --from-file "$f" -g "$gw" >/dev/null 2>&1 \
      || faas-cli secret update "$name" --from-file "$f" -g "$gw" >/dev/null
  done
  faas-cli deploy -f "$stack" -g "$gw"
}

deploy
[ -z "${DEPLOY_ONCE:-}" ] || exit 0
while sleep 30; do
  if ! faas-cli list -g "$gw" 2>/dev/null | grep -q '^transcode'; then
    echo "provider has no functions: deploying again"
    deploy || true
  fi
done
