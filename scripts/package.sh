#!/usr/bin/env bash
# Builds switchboard and switchboard-agent as static binaries, then their
# .deb and .rpm packages (nfpm, a Go tool pinned in go.mod: nothing is
# downloaded beyond the module cache).
#
# Usage: scripts/package.sh [build] [deb] [rpm]    (default: build deb rpm)
#   build  only the binaries; deb/rpm imply build.
# Environment:
#   VERSION     package and binary version (default: from `git describe
#               --tags --match 'v[0-9]*'`, else 0.0.0-dev)
#   GOARCH      target architecture (default: `go env GOARCH`)
#   DIST        output directory (default: dist)
#   MAINTAINER  package Maintainer field
set -euo pipefail
cd "$(dirname "$0")/.."

want_deb=no want_rpm=no
if [ $# -eq 0 ]; then
	set -- build deb rpm
fi
for arg in "$@"; do
	case "$arg" in
	build) ;;
	deb) want_deb=yes ;;
	rpm) want_rpm=yes ;;
	*) echo "package.sh: unknown target '$arg' (want: build, deb, rpm)" >&2; exit 2 ;;
	esac
done

# version turns `git describe` output into a version nfpm reads as semver and
# dpkg/rpm sort correctly: v1.2.3 -> 1.2.3; v1.2.3-4-gabc1234[-dirty] ->
# 1.2.3+4.gabc1234[.dirty] (build metadata, so it sorts after 1.2.3, where a
# semver pre-release "-4-g…" would sort before it).
version() {
	if [ -n "${VERSION:-}" ]; then
		echo "${VERSION#v}"
		return
	fi
	local d
	if ! d=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
		echo 0.0.0-dev
		return
	fi
	d=${d#v}
	if [[ $d =~ ^([0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?)-([0-9]+)-g([0-9a-f]+)(-dirty)?$ ]]; then
		d="${BASH_REMATCH[1]}+${BASH_REMATCH[3]}.g${BASH_REMATCH[4]}${BASH_REMATCH[5]:+.dirty}"
	elif [[ $d =~ ^(.*)-dirty$ ]]; then
		d="${BASH_REMATCH[1]}+dirty"
	fi
	echo "$d"
}

VERSION=$(version)
GOARCH=${GOARCH:-$(go env GOARCH)}
DIST=${DIST:-dist}
MAINTAINER=${MAINTAINER:-Switchboard maintainers <maintainers@switchboard-pbx.invalid>}
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
export VERSION GOARCH DIST MAINTAINER

echo "==> build $VERSION linux/$GOARCH into $DIST"
for bin in switchboard switchboard-agent; do
	CGO_ENABLED=0 GOOS=linux go build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION" \
		-o "$DIST/$bin" "./cmd/$bin"
done

packagers=()
[ "$want_deb" = yes ] && packagers+=(deb)
[ "$want_rpm" = yes ] && packagers+=(rpm)
[ ${#packagers[@]} -eq 0 ] && exit 0

# The maintainer scripts are rendered from one template per phase and one
# names file per package (packaging/scripts/render.sh). nfpm expands
# variables in contents but not in scripts, so the path is put into the
# definition here and the definition goes to nfpm on stdin.
scripts="$DIST/scripts"
rm -rf "$scripts"
sh packaging/scripts/render.sh "$scripts"
for packager in "${packagers[@]}"; do
	for def in agent switchboard; do
		echo "==> $packager: packaging/nfpm-$def.yaml"
		yaml=$(<"packaging/nfpm-$def.yaml")
		printf '%s\n' "${yaml//'${SCRIPTS}'/"$scripts"}" |
			go tool nfpm package -f - -p "$packager" -t "$DIST/"
	done
done
