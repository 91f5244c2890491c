#!/usr/bin/env bash
# Runs govulncheck on the main module against an offline copy of the Go
# vulnerability database. vuln.go.dev is not reachable from our build
# machines, but the Go module proxy is, and golang.org/x/vulndb (a module)
# carries the same OSV entries: this script downloads it through the proxy,
# indexes it into the layout `govulncheck -db file:///DIR` reads
# (infra/tools/vulndbindex), builds govulncheck from the version pinned in
# infra/tools and scans ./... .
#
#   infra/security/govulncheck.sh                 # symbol-level scan; exit 3 if a vulnerable symbol is called
#   infra/security/govulncheck.sh -show verbose   # extra arguments go to govulncheck
#
# VULNDB_VERSION picks another snapshot of golang.org/x/vulndb (a pseudo-version
# the proxy serves); VULNDB_DIR where the index is written (default bin/vulndb).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
version=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
db=${VULNDB_DIR:-$root/bin/vulndb}

# go mod download outside any module: the tools module's go.mod stays as it is.
src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [[ -z "$src" || ! -d "$src/data/osv" ]]; then
	echo "govulncheck.sh: golang.org/x/vulndb@$version has no data/osv (download failed?)" >&2
	exit 1
fi
rm -rf "$db.tmp" && mkdir -p "$(dirname "$db")"
# A pseudo-version's middle field is its commit time (UTC): the snapshot's date.
stamp=$(sed -n 's/^v0\.0\.0-\([0-9]\{4\}\)\([0-9]\{2\}\)\([0-9]\{2\}\)\([0-9]\{2\}\)\([0-9]\{2\}\)\([0-9]\{2\}\)-.*/\1-\2-\3T\4:\5:\6Z/p' <<<"$version")
(cd "$root/infra/tools" && go run ./vulndbindex -osv "$src/data/osv" -out "$db.tmp" ${stamp:+-modified "$stamp"})
rm -rf "$db" && mv "$db.tmp" "$db"

(cd "$root/infra/tools" && go build -o "$root/bin/govulncheck" golang.org/x/vuln/cmd/govulncheck)
echo "govulncheck $(cd "$root/infra/tools" && go list -m -f '{{.Version}}' golang.org/x/vuln), database golang.org/x/vulndb@$version, $(go env GOVERSION)"
cd "$root"
exec "$root/bin/govulncheck" -db "file://$db" "$@" ./...
