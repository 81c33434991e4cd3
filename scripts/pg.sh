# shellcheck shell=bash
# Throwaway PostgreSQL for tests. Source it, then call pg_start:
#
#   source scripts/pg.sh
#   pg_start
#   go test ./...          # SWITCHBOARD_TEST_POSTGRES is now set
#
# pg_start installs Debian's postgresql package when initdb is missing,
# creates a cluster in a temp dir, runs it as the postgres user (initdb and
# postgres refuse root) on a free port on 127.0.0.1 with trust auth, exports
# SWITCHBOARD_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable,
# and stops it and deletes the dir when the shell exits. pg_stop does that
# early. Any failure is fatal: tests must fail, not skip, without PostgreSQL.

_pg_die() {
	echo "pg.sh: $*" >&2
	if [ -n "${PG_SH_DIR:-}" ] && [ -f "$PG_SH_DIR/postgres.log" ]; then
		echo "pg.sh: last lines of the server log:" >&2
		tail -n 20 "$PG_SH_DIR/postgres.log" >&2
	fi
	exit 1
}

# _pg_bindir prints the directory holding initdb, preferring PATH.
_pg_bindir() {
	local p d
	if p=$(command -v initdb 2>/dev/null); then
		dirname "$(readlink -f "$p")"
		return 0
	fi
	while IFS= read -r d; do
		if [ -x "$d/initdb" ]; then
			echo "$d"
			return 0
		fi
	done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
	return 1
}

# _pg_as_owner runs a command as the postgres user when we are root.
_pg_as_owner() {
	if [ "$(id -u)" -ne 0 ]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u postgres -- "$@"
	elif command -v setpriv >/dev/null 2>&1; then
		setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
	else
		su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
	fi
}

_pg_install() {
	local sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || _pg_die "PostgreSQL is not installed and installing it needs root (no sudo found)"
		sudo="sudo"
	fi
	command -v apt-get >/dev/null 2>&1 || _pg_die "PostgreSQL is not installed and apt-get is not available; install PostgreSQL (initdb, postgres) and retry"
	echo "pg.sh: installing PostgreSQL (apt-get install postgresql)" >&2
	$sudo apt-get update -q || _pg_die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends postgresql ||
		_pg_die "apt-get install postgresql failed"
}

# _pg_port_free reports whether nothing listens on 127.0.0.1:$1.
_pg_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_start() {
	if [ -n "${PG_SH_DIR:-}" ]; then
		echo "pg.sh: already running ($SWITCHBOARD_TEST_POSTGRES)" >&2
		return 0
	fi
	local bindir
	if ! bindir=$(_pg_bindir); then
		_pg_install
		bindir=$(_pg_bindir) || _pg_die "initdb still not found after installing postgresql"
	fi
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		_pg_die "running as root needs a 'postgres' user to run the server as (the postgresql package creates it)"
	fi

	PG_SH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-pg.XXXXXX") || _pg_die "mktemp failed"
	export PG_SH_DIR
	# Keep any EXIT trap the caller had, and run it after stopping the server.
	local prev
	prev=$(trap -p EXIT)
	if [ -n "$prev" ]; then
		eval "set -- ${prev#trap -- }"
		_PG_SH_PREV_TRAP=$1
	fi
	trap _pg_on_exit EXIT
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$PG_SH_DIR" || _pg_die "chown $PG_SH_DIR failed"
	fi

	_pg_as_owner env LC_ALL=C "$bindir/initdb" -D "$PG_SH_DIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
		>"$PG_SH_DIR/initdb.log" 2>&1 || { cat "$PG_SH_DIR/initdb.log" >&2; _pg_die "initdb failed"; }

	# Pick a free port below the kernel's ephemeral range, where busy
	# loopback clients keep taking ports; if one is taken anyway, try another.
	local port tries=0 eph_lo=32768
	if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
		read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range || true
	fi
	[ "$eph_lo" -gt 12000 ] || eph_lo=62000
	while :; do
		tries=$((tries + 1))
		[ "$tries" -le 20 ] || _pg_die "could not start PostgreSQL on a free port after 20 tries"
		port=$((10000 + RANDOM % (eph_lo - 10000)))
		_pg_port_free "$port" || continue
		: >"$PG_SH_DIR/postgres.log"
		[ "$(id -u)" -ne 0 ] || chown postgres: "$PG_SH_DIR/postgres.log"
		if _pg_as_owner "$bindir/pg_ctl" -D "$PG_SH_DIR/data" -l "$PG_SH_DIR/postgres.log" -w -t 60 \
			-o "-p $port -k '$PG_SH_DIR' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
			start >/dev/null; then
			break
		fi
		grep -q 'Address already in use' "$PG_SH_DIR/postgres.log" 2>/dev/null || _pg_die "pg_ctl start failed"
		echo "pg.sh: port $port is taken, trying another" >&2
	done
	PG_SH_BINDIR=$bindir
	export PG_SH_BINDIR
	export SWITCHBOARD_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	echo "pg.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $PG_SH_DIR)" >&2
}

_pg_on_exit() {
	local rc=$?
	pg_stop
	if [ -n "${_PG_SH_PREV_TRAP:-}" ]; then
		eval "$_PG_SH_PREV_TRAP"
	fi
	return "$rc"
}

pg_stop() {
	[ -n "${PG_SH_DIR:-}" ] || return 0
	if [ -f "$PG_SH_DIR/data/postmaster.pid" ]; then
		_pg_as_owner "${PG_SH_BINDIR:-$(_pg_bindir)}/pg_ctl" -D "$PG_SH_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			echo "pg.sh: pg_ctl stop failed; the server in $PG_SH_DIR may still run" >&2
	fi
	rm -rf "$PG_SH_DIR"
	unset PG_SH_DIR SWITCHBOARD_TEST_POSTGRES
}
