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
#   SOURCE_DATE_EPOCH  date of the man pages and of the changelog entry of a
#               build between releases (default: the last commit's time)
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

# generate_share: what the packages ship besides the binaries, into $DIST/share:
# shell completion and man pages from a build of switchboard for this
# machine (the target may be another architecture), and the Debian
# changelog. SOURCE_DATE_EPOCH (default: the last commit's time) dates the
# man pages and a changelog entry, so two builds of a commit are the same.
generate_share() {
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
	export SOURCE_DATE_EPOCH
	share="$DIST/share"
	echo "==> completion, man pages, changelog into $share"
	rm -rf "$share"
	mkdir -p "$share/completion" "$share/man" "$share/doc"
	host_sb="$share/switchboard-host"
	GOOS=$(go env GOHOSTOS) GOARCH=$(go env GOHOSTARCH) CGO_ENABLED=0 go build -trimpath \
		-ldflags "-X main.version=$VERSION" -o "$host_sb" ./cmd/switchboard
	"$host_sb" completion bash >"$share/completion/switchboard.bash"
	"$host_sb" completion zsh >"$share/completion/_switchboard"
	"$host_sb" completion fish >"$share/completion/switchboard.fish"
	"$host_sb" man "$share/man" 2>/dev/null
	rm -f "$host_sb"
	gzip -9n "$share/man/"*.1
	# changelog.Debian: packaging/changelog, under an entry for this build
	# when the build is not the newest entry's version (a build between
	# releases). nfpm turns a semver pre-release "-x" into Debian's "~x".
	deb_version="$(echo "$VERSION" | sed 's/-/~/')-1"
	top=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' packaging/changelog)
	{
		if [ "$top" != "$deb_version" ]; then
			printf 'switchboard (%s) UNRELEASED; urgency=medium\n\n  * Built from %s.\n\n -- %s  %s\n\n' \
				"$deb_version" "$(git describe --always --dirty 2>/dev/null || echo 'a source tree without git')" \
				"$MAINTAINER" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
		fi
		cat packaging/changelog
	} | gzip -9n >"$share/doc/changelog.Debian.gz"
}

packagers=()
[ "$want_deb" = yes ] && packagers+=(deb)
[ "$want_rpm" = yes ] && packagers+=(rpm)
[ ${#packagers[@]} -eq 0 ] && exit 0
generate_share

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
