# shellcheck shell=bash
# Chromium for the web console's browser tests (controlplane/console).
# Source it, then call chromium_ensure:
#
#   source scripts/chromium.sh
#   chromium_ensure
#   go test ./controlplane/console/    # SWITCHBOARD_CHROMIUM is now set
#
# chromium_ensure installs Debian's chromium package when no Chromium is on
# the PATH (as pg.sh does for PostgreSQL) and exports SWITCHBOARD_CHROMIUM.
# The tests start it themselves, headless, in an empty profile, with the
# flags a machine without internet needs. Any failure is fatal: the tests
# must fail, not skip, without a browser.

_chromium_die() {
	echo "chromium.sh: $*" >&2
	exit 1
}

_chromium_find() {
	local n
	for n in chromium chromium-browser; do
		if command -v "$n" >/dev/null 2>&1; then
			command -v "$n"
			return 0
		fi
	done
	return 1
}

chromium_ensure() {
	local bin sudo=""
	if [ -n "${SWITCHBOARD_CHROMIUM:-}" ]; then
		[ -x "$SWITCHBOARD_CHROMIUM" ] || _chromium_die "SWITCHBOARD_CHROMIUM=$SWITCHBOARD_CHROMIUM is not an executable"
		return 0
	fi
	if ! bin=$(_chromium_find); then
		if [ "$(id -u)" -ne 0 ]; then
			command -v sudo >/dev/null 2>&1 || _chromium_die "Chromium is not installed and installing it needs root (no sudo found)"
			sudo="sudo"
		fi
		command -v apt-get >/dev/null 2>&1 || _chromium_die "Chromium is not installed and apt-get is not available; install Chromium and set SWITCHBOARD_CHROMIUM"
		echo "chromium.sh: installing Chromium (apt-get install chromium)" >&2
		$sudo apt-get update -q || _chromium_die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium ||
			_chromium_die "apt-get install chromium failed"
		bin=$(_chromium_find) || _chromium_die "chromium still not found after installing it"
	fi
	export SWITCHBOARD_CHROMIUM="$bin"
	echo "chromium.sh: $("$bin" --version 2>/dev/null | head -n 1) at $bin" >&2
}
