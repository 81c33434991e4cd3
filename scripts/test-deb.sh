#!/usr/bin/env bash
# Builds the switchboard and switchboard-agent .deb packages, installs them on
# THIS machine with dpkg, checks what a PBX operator would rely on, then
# removes and purges them and checks that nothing is left behind.
#
# Needs root and dpkg (CI runs as root on Debian 12). Safe to run twice, and
# cleans up (purges both packages, deletes what it seeded) even when a check
# fails or the script is interrupted. The last line is
#   test-deb: PASS (N checks)   or   test-deb: FAIL (K of N checks failed)
#
# Refuses to touch a machine where either package is already installed
# (that would be someone's real installation), unless CI=true or --force.
#
# Why verify the INSTALLED units: `systemd-analyze verify` checks that
# ExecStart's binary exists and is executable, so verifying the installed
# files tests the real paths the package ships (/usr/bin/…,
# /lib/systemd/system/…) instead of a doctored copy.

# Helpers below are called through check(), which shellcheck cannot follow.
# shellcheck disable=SC2317
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PKGS=(switchboard-agent switchboard)
force=no
case "${1:-}" in
--force) force=yes ;;
"") ;;
*) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac
[ "${CI:-}" = true ] && force=yes

checks=0
failed=0
ok() { checks=$((checks + 1)); printf '  ok    %s\n' "$*"; }
bad() { checks=$((checks + 1)); failed=$((failed + 1)); printf '  FAIL  %s\n' "$*"; }
# check DESCRIPTION COMMAND...: one check that passes when COMMAND succeeds.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
# expect_stat PATH MODE OWNER:GROUP
expect_stat() {
	local got
	got=$(stat -c '%a %U:%G' "$1" 2>/dev/null) || { bad "$1 exists"; return; }
	if [ "$got" = "$2 $3" ]; then ok "$1 is $2 $3"; else bad "$1 is $2 $3 (got $got)"; fi
}
absent() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
not() { ! "$@"; }
quiet() { "$@" >/dev/null 2>&1; }
no_login() { [[ $1 == */nologin || $1 == /bin/false ]]; }
# is_conffile PACKAGE PATH
is_conffile() { dpkg-query -W -f='${Conffiles}' "$1" | grep -q "^ $2 "; }
known_to_dpkg() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qv '^not-installed$'; }
die() { echo "$*"; echo "test-deb: FAIL ($*)"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root: it installs packages with dpkg"
command -v dpkg >/dev/null || die "dpkg not found: this test needs a Debian-like machine"

for p in "${PKGS[@]}"; do
	if known_to_dpkg "$p"; then
		[ "$force" = yes ] || die "$p is already installed here; refusing to purge it (rerun with --force)"
		echo "==> purging leftover $p"
		dpkg --purge "$p" >/dev/null || die "could not purge leftover $p"
	fi
done

work=$(mktemp -d /tmp/switchboard-test-deb.XXXXXX)
seeded=()
cleanup() {
	local rc=$?
	for p in "${PKGS[@]}"; do
		if known_to_dpkg "$p"; then
			dpkg --purge "$p" >/dev/null 2>&1 || echo "cleanup: dpkg --purge $p failed" >&2
		fi
	done
	for f in "${seeded[@]}"; do rm -rf "$f"; done
	rmdir /etc/switchboard 2>/dev/null
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> build .deb packages"
if ! DIST="$work/dist" bash scripts/package.sh deb >"$work/build.log" 2>&1; then
	cat "$work/build.log"
	die "scripts/package.sh deb failed"
fi
agent_deb=$(ls "$work"/dist/switchboard-agent_*.deb)
cp_deb=$(ls "$work"/dist/switchboard_*.deb)
check "built $(basename "$agent_deb")" test -s "$agent_deb"
check "built $(basename "$cp_deb")" test -s "$cp_deb"

echo "==> maintainer scripts in the packages"
# What dpkg runs must be the rendered templates that packaging/scripts_test.go
# compares with the reviewed copies in packaging/testdata.
dpkg-deb -e "$agent_deb" "$work/ctl-agent"
dpkg-deb -e "$cp_deb" "$work/ctl-switchboard"
for prefix in agent switchboard; do
	for pair in postinst:postinstall prerm:preremove postrm:postremove; do
		script="$work/ctl-$prefix/${pair%%:*}"
		golden="packaging/testdata/$prefix-${pair#*:}.sh.golden"
		check "$prefix ${pair%%:*} is $golden" cmp -s "$script" "$golden"
		check "$prefix ${pair%%:*} parses as POSIX sh" sh -n "$script"
	done
done

# A secret an operator wrote before installing, with a careless mode: the
# postinstall must take it away from other users.
mkdir -p /etc/switchboard
if [ ! -e /etc/switchboard/agent.token ]; then
	seeded+=(/etc/switchboard/agent.token)
	(umask 022 && echo test-token >/etc/switchboard/agent.token)
fi

echo "==> dpkg -i"
if ! dpkg -i "$agent_deb" "$cp_deb" >"$work/install.log" 2>&1; then
	cat "$work/install.log"
	die "dpkg -i failed"
fi
check "postinstall printed the enable hint" grep -q "systemctl enable --now switchboard-agent" "$work/install.log"
check "postinstall printed the control plane hint" grep -qF "'systemctl enable --now switchboard'" "$work/install.log"

echo "==> files"
expect_stat /usr/bin/switchboard-agent 755 root:root
expect_stat /usr/bin/switchboard 755 root:root
expect_stat /lib/systemd/system/switchboard-agent.service 644 root:root
expect_stat /lib/systemd/system/switchboard.service 644 root:root
expect_stat /etc/switchboard 755 root:root
expect_stat /etc/switchboard/agent.conf 640 root:switchboard-agent
expect_stat /etc/switchboard/switchboard.conf 640 root:switchboard
expect_stat /etc/switchboard/agent.token 640 root:switchboard-agent
expect_stat /usr/share/doc/switchboard-agent/manager.conf.example 644 root:root
expect_stat /usr/share/doc/switchboard-agent/README.md 644 root:root
expect_stat /usr/share/doc/switchboard/README.md 644 root:root
ships_secret() { dpkg -L switchboard-agent | grep -q 'agent\.token\|ami\.secret'; }
check "the package ships no token or AMI secret" not ships_secret

echo "==> Debian policy: copyright and changelog"
# gzip_n FILE: gzip made with -n, as policy asks (no name, no timestamp in
# the header: reproducible).
gzip_n() {
	local head
	head=$(od -An -tx1 -N8 "$1" | tr -d ' \n')
	[ "${head:0:6}" = 1f8b08 ] || return 1                      # gzip, deflate
	[ $((0x${head:6:2} & 0x08)) -eq 0 ] || return 1            # FNAME unset
	[ "${head:8:8}" = 00000000 ]                               # MTIME 0
}
# changelog_matches PACKAGE: its changelog parses and its newest entry is
# the installed version.
changelog_matches() {
	local v
	v=$(zcat "/usr/share/doc/$1/changelog.Debian.gz" | dpkg-parsechangelog -l - -S Version 2>&1) || { echo "        $v"; return 1; }
	[ "$v" = "$(dpkg-query -W -f='${Version}' "$1")" ] || { echo "        changelog $v, package $(dpkg-query -W -f='${Version}' "$1")"; return 1; }
}
is_dep5() { head -1 "$1" | grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/'; }
for p in "${PKGS[@]}"; do
	expect_stat "/usr/share/doc/$p/copyright" 644 root:root
	check "$p copyright is machine-readable (DEP-5)" is_dep5 "/usr/share/doc/$p/copyright"
	check "$p copyright names the MIT (Expat) license of the project" grep -q "^Copyright: 2026 The Switchboard authors" "/usr/share/doc/$p/copyright"
	expect_stat "/usr/share/doc/$p/changelog.Debian.gz" 644 root:root
	check "$p changelog.Debian.gz is gzip -9n" gzip_n "/usr/share/doc/$p/changelog.Debian.gz"
	if command -v dpkg-parsechangelog >/dev/null; then
		check "$p changelog parses, newest entry = package version" changelog_matches "$p"
	fi
done

echo "==> shell completion and man pages"
bash_cpl=/usr/share/bash-completion/completions/switchboard
zsh_cpl=/usr/share/zsh/vendor-completions/_switchboard
fish_cpl=/usr/share/fish/vendor_completions.d/switchboard.fish
for f in "$bash_cpl" "$zsh_cpl" "$fish_cpl"; do
	expect_stat "$f" 644 root:root
done
check "bash completion parses (bash -n)" bash -n "$bash_cpl"
# offers WORDS EXPECTED: what the installed bash completion offers.
offers() {
	local got
	got=$(bash -c 'source '"$bash_cpl"'; COMP_WORDS=('"$1"'); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _switchboard; echo "${COMPREPLY[*]}"')
	[ "$got" = "$2" ] || { echo "        offered '$got'"; return 1; }
}
check "bash completes 'switchboard calls '" offers 'switchboard calls ""' "list place hangup"
check "bash completes 'switchboard fleet status --ami '" offers 'switchboard fleet status --ami ""' "up down unknown"
if command -v zsh >/dev/null; then check "zsh completion parses (zsh -n)" zsh -n "$zsh_cpl"; fi
if command -v fish >/dev/null; then check "fish completion parses (fish -n)" fish --no-execute "$fish_cpl"; fi
pages=$(/usr/bin/switchboard --help | grep -cE '^  [a-z]')
check "one man page per command (+ switchboard.1): $pages + 1" test "$(ls /usr/share/man/man1/switchboard*.1.gz | wc -l)" -eq $((pages + 1))
# renders PAGE: groff formats it with no warning.
renders() {
	local warn
	warn=$(zcat "$1" | groff -man -Tutf8 -ww -z 2>&1) && [ -z "$warn" ] || { echo "        $warn"; return 1; }
}
for page in /usr/share/man/man1/switchboard*.1.gz; do
	check "$(basename "$page") is gzip -9n" gzip_n "$page"
	if command -v groff >/dev/null; then check "$(basename "$page") renders without warnings" renders "$page"; fi
done
check "man -l shows switchboard-calls-place" quiet sh -c 'man -P cat -l /usr/share/man/man1/switchboard-calls-place.1.gz | grep -q -- --idempotency-key'

echo "==> the admin commands read the installed config file"
# No --db, no --config: the store is the one of
# /etc/switchboard/switchboard.conf, which does not exist before the first
# start, so the command says so, and creates nothing where it runs.
admin_uses_system_config() {
	local out dir
	dir=$(mktemp -d "$work/cwd.XXXXXX")
	out=$(cd "$dir" && /usr/bin/switchboard agent list 2>&1)
	[ -z "$(ls -A "$dir")" ] || { echo "        left $(ls -A "$dir") in the working directory"; return 1; }
	grep -q "no store at /var/lib/switchboard/switchboard.db (from /etc/switchboard/switchboard.conf)" <<<"$out" || { echo "        $out"; return 1; }
}
check "switchboard agent list, run anywhere, looks in /var/lib/switchboard" admin_uses_system_config
check "/var/lib/switchboard still not created" absent /var/lib/switchboard

echo "==> every option in the shipped config files is a flag of the binary"
# conf_names_known BINARY SUBCOMMAND ENV_PREFIX CONF: uncomment every
# `# name = value` line of CONF and load it with the installed binary. An
# invalid log level from the environment (which wins over the file) stops the
# program right after the file was parsed, so nothing is started; the error
# must then be about that log level, not about the file.
conf_names_known() {
	local all out
	all="$work/$(basename "$4").all"
	sed -E 's/^# ([a-z][a-z-]*) =( .*)?$/\1 =\2/' "$4" | grep -v '^#' >"$all"
	out=$(env "$3_LOG_LEVEL=not-a-level" timeout 20 "$1" "$2" --config "$all" 2>&1)
	if grep -q 'log-level' <<<"$out" && ! grep -q "$all" <<<"$out"; then
		return 0
	fi
	echo "        $out"
	return 1
}
# flags_documented BINARY SUBCOMMAND CONF: the other direction, every flag
# the binary takes (but --config) has its `name =` line in CONF.
flags_documented() {
	local name missing=()
	for name in $("$1" "$2" --help 2>&1 | grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z-]*' | sed -E 's/.*--//'); do
		[ "$name" = config ] && continue
		grep -qE "^(# )?$name =" "$3" || missing+=("$name")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "        not in $3: ${missing[*]}"
	return 1
}
check "switchboard-agent run flags are all in agent.conf" \
	flags_documented /usr/bin/switchboard-agent run /etc/switchboard/agent.conf
check "switchboard serve flags are all in switchboard.conf" \
	flags_documented /usr/bin/switchboard serve /etc/switchboard/switchboard.conf
check "agent.conf options are switchboard-agent run flags" \
	conf_names_known /usr/bin/switchboard-agent run SWITCHBOARD_AGENT /etc/switchboard/agent.conf
check "switchboard.conf options are switchboard serve flags" \
	conf_names_known /usr/bin/switchboard serve SWITCHBOARD /etc/switchboard/switchboard.conf

echo "==> users"
for u in switchboard-agent switchboard; do
	entry=$(getent passwd "$u")
	check "user $u exists" test -n "$entry"
	IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
	check "user $u is a system user (uid $uid < 1000)" test "${uid:-1000}" -lt 1000
	check "user $u has home /var/lib/$u" test "$home" = "/var/lib/$u"
	check "user $u cannot log in ($shell)" no_login "$shell"
	check "group $u exists and is $u's primary group" test "$(getent group "$u" | cut -d: -f3)" = "$gid"
	check "home /var/lib/$u not created before first start" absent "/var/lib/$u"
done
agent_uid=$(id -u switchboard-agent)

echo "==> conffiles"
check "agent.conf is a conffile" is_conffile switchboard-agent /etc/switchboard/agent.conf
check "switchboard.conf is a conffile" is_conffile switchboard /etc/switchboard/switchboard.conf

echo "==> systemd-analyze verify (installed units)"
for u in switchboard-agent switchboard; do
	out=$(systemd-analyze verify "/lib/systemd/system/$u.service" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && [ -z "$out" ]; then
		ok "systemd-analyze verify $u.service: clean"
	else
		bad "systemd-analyze verify $u.service (rc $rc): $out"
	fi
done

# Guards the hardening against regressions: exposure 1.4 today ("OK");
# fail past 2.0.
for u in switchboard-agent switchboard; do
	if systemd-analyze security --offline=true --threshold=20 "/lib/systemd/system/$u.service" >"$work/security.log" 2>&1; then
		ok "systemd-analyze security $u.service: $(grep -o 'exposure level.*' "$work/security.log")"
	else
		bad "systemd-analyze security $u.service above 2.0: $(grep -o 'exposure level.*' "$work/security.log")"
	fi
done

echo "==> nothing enabled or started"
not_enabled_or_running() {
	local u=$1
	compgen -G "/etc/systemd/system/*.wants/$u.service" >/dev/null && return 1
	# is-enabled reads unit files, so it answers without a running systemd.
	[ "$(systemctl is-enabled "$u.service" 2>/dev/null)" = disabled ] || return 1
	if [ -d /run/systemd/system ]; then
		[ "$(systemctl is-active "$u.service" 2>/dev/null)" != active ] || return 1
	fi
	if command -v pgrep >/dev/null; then
		! pgrep -f "^/usr/bin/$u( |$)" >/dev/null
	fi
}
for u in switchboard-agent switchboard; do
	check "$u.service neither enabled nor running" not_enabled_or_running "$u"
done

echo "==> reinstall over itself (the upgrade path) keeps local edits"
echo "# local edit by test-deb" >>/etc/switchboard/agent.conf
chmod 0644 /etc/switchboard/agent.token
if dpkg -i "$agent_deb" >"$work/upgrade.log" 2>&1; then
	ok "dpkg -i over the installed package"
else
	bad "dpkg -i over the installed package: $(cat "$work/upgrade.log")"
fi
check "local edit in agent.conf kept" grep -q "^# local edit by test-deb" /etc/switchboard/agent.conf
check "no first-install hint on upgrade" not grep -q "systemctl enable --now" "$work/upgrade.log"
check "user kept its uid" test "$(id -u switchboard-agent)" = "$agent_uid"
expect_stat /etc/switchboard/agent.conf 640 root:switchboard-agent
expect_stat /etc/switchboard/agent.token 640 root:switchboard-agent
check "still not enabled or running" not_enabled_or_running switchboard-agent

# What systemd's StateDirectory= would have made on a first start.
for u in switchboard-agent switchboard; do
	install -d -m 0750 -o "$u" -g "$u" "/var/lib/$u"
	install -m 0600 -o "$u" -g "$u" /dev/null "/var/lib/$u/state"
done

# An operator enabled the agent: purge must drop the enablement symlink.
# (systemctl enable only writes symlinks, so it works without a running
# systemd and starts nothing here.)
systemctl enable switchboard-agent.service >/dev/null 2>&1
check "systemctl enable made the symlink" test -L /etc/systemd/system/multi-user.target.wants/switchboard-agent.service

echo "==> dpkg --remove keeps data, user and config"
if dpkg --remove switchboard-agent >"$work/remove.log" 2>&1; then
	ok "dpkg --remove switchboard-agent"
else
	bad "dpkg --remove switchboard-agent: $(cat "$work/remove.log")"
fi
check "binary removed" absent /usr/bin/switchboard-agent
check "unit removed" absent /lib/systemd/system/switchboard-agent.service
check "agent.conf kept" test -f /etc/switchboard/agent.conf
check "agent.token kept" test -f /etc/switchboard/agent.token
check "state kept" test -f /var/lib/switchboard-agent/state
check "user kept" quiet getent passwd switchboard-agent
check "control plane untouched" test -x /usr/bin/switchboard

echo "==> dpkg --purge removes everything"
if dpkg --purge switchboard-agent switchboard >"$work/purge.log" 2>&1; then
	ok "dpkg --purge switchboard-agent switchboard"
else
	bad "dpkg --purge: $(cat "$work/purge.log")"
fi
for p in "${PKGS[@]}"; do
	check "$p unknown to dpkg" not known_to_dpkg "$p"
	check "user $p deleted" not quiet getent passwd "$p"
	check "group $p deleted" not quiet getent group "$p"
	check "/var/lib/$p deleted" absent "/var/lib/$p"
	check "/usr/bin/$p deleted" absent "/usr/bin/$p"
	check "$p.service deleted" absent "/lib/systemd/system/$p.service"
	check "/usr/share/doc/$p deleted" absent "/usr/share/doc/$p"
done
for f in "$bash_cpl" "$zsh_cpl" "$fish_cpl" /usr/share/man/man1/switchboard.1.gz /usr/share/man/man1/switchboard-calls-list.1.gz; do
	check "$f deleted" absent "$f"
done
check "/etc/switchboard deleted (conffiles and secrets)" absent /etc/switchboard
check "enablement symlink deleted" absent /etc/systemd/system/multi-user.target.wants/switchboard-agent.service

echo
if [ "$failed" -eq 0 ]; then
	echo "test-deb: PASS ($checks checks)"
	exit 0
fi
echo "test-deb: FAIL ($failed of $checks checks failed)"
exit 1
