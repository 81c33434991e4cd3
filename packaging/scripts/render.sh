#!/bin/sh
# Renders the maintainer scripts of both packages. For each package's names
# file (agent.names, switchboard.names: its user, unit, files and hint) and
# each phase template (postinstall.sh.in, preremove.sh.in, postremove.sh.in)
# it writes OUTDIR/<names file>-<phase>.sh: the template with its @NAMES@
# line replaced by the names file and @PACKAGE@ by the package name (NAME=
# in the names file).
#
# Generated rather than sourced from a shared library: each package may be
# installed alone, and a postrm purge runs after the package's files are
# gone, so every script must stand on its own.
#
# scripts/package.sh runs it before nfpm; packaging/scripts_test.go compares
# its output with the golden files in packaging/testdata.
#
# Usage: sh packaging/scripts/render.sh OUTDIR
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
src=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"
for names in "$src"/*.names; do
	prefix=$(basename "$names" .names)
	pkg=$(sed -n 's/^NAME=\([a-z0-9-]*\).*/\1/p' "$names")
	if [ -z "$pkg" ]; then
		echo "render.sh: no NAME= in $names" >&2
		exit 1
	fi
	for tmpl in "$src"/*.sh.in; do
		phase=$(basename "$tmpl" .sh.in)
		awk -v pkg="$pkg" -v names="$names" '
			$0 == "@NAMES@" { while ((getline line < names) > 0) print line; close(names); next }
			{ gsub(/@PACKAGE@/, pkg); print }
		' "$tmpl" >"$out/$prefix-$phase.sh"
		chmod 0755 "$out/$prefix-$phase.sh"
	done
done
