#!/bin/sh
# switchboard: deb postinst / rpm %post. Creates the system user, gives the service's
# files to its group, reloads systemd. Never enables or starts the unit; on
# an upgrade it restarts the unit only if it was already running.
#
# POSIX sh, idempotent: every step checks before it acts, so a re-run or an
# upgrade (old prerm/postrm + new postinst) never fails on what exists.
# The block below is the only difference between the agent-* and
# switchboard-* copies of this script; scripts/test-deb.sh checks that the
# rest is identical.
#
# The names block is shared by all three phases, so some are unused here.
# shellcheck disable=SC2034
set -e

NAME=switchboard                        # package, system user and group
UNIT=switchboard.service
STATE_DIR=/var/lib/switchboard          # the unit's StateDirectory= and the user's home
GECOS="Switchboard control plane"
# Files that belong to the service: the shipped config (it may carry a
# database password) and the secrets an operator creates. Given to
# root:$NAME 0640 so that nobody else can read them.
OWNED_FILES="/etc/switchboard/switchboard.conf /etc/switchboard/tls.key /etc/switchboard/jwt.secret"
# Deleted on purge besides the conffiles dpkg removes itself.
PURGE_FILES="/etc/switchboard/tls.key /etc/switchboard/jwt.secret /etc/credstore/switchboard-jwt-secret"
HINT="switchboard is installed but not started. Review /etc/switchboard/switchboard.conf (default: 127.0.0.1:8080, SQLite in /var/lib/switchboard), then 'systemctl enable --now switchboard'."

# ---- body: identical in agent-postinstall.sh and switchboard-postinstall.sh ----

# deb: $1 = configure (others: abort-*), $2 = previously configured version
#      (empty on a first install).
# rpm: $1 = 1 on install, 2 on upgrade.
case "$1" in
configure) if [ -n "$2" ]; then upgrade=yes; else upgrade=no; fi ;;
1) upgrade=no ;;
2) upgrade=yes ;;
*) exit 0 ;;
esac

nologin() {
	for sh in /usr/sbin/nologin /sbin/nologin; do
		if [ -x "$sh" ]; then
			echo "$sh"
			return
		fi
	done
	echo /bin/false
}

# System user and group, never a login. Debian's adduser when it is there
# (it picks a UID in the system range and logs the change the Debian way);
# useradd elsewhere (on RPM systems `adduser` is useradd under another name
# and does not take these options).
if ! getent group "$NAME" >/dev/null; then
	if [ -f /etc/debian_version ] && command -v addgroup >/dev/null 2>&1; then
		addgroup --system --quiet "$NAME"
	else
		groupadd -r "$NAME"
	fi
fi
if ! getent passwd "$NAME" >/dev/null; then
	if [ -f /etc/debian_version ] && command -v adduser >/dev/null 2>&1; then
		adduser --system --ingroup "$NAME" --no-create-home --home "$STATE_DIR" \
			--shell "$(nologin)" --gecos "$GECOS" --quiet "$NAME"
	else
		useradd -r -g "$NAME" -M -d "$STATE_DIR" -s "$(nologin)" -c "$GECOS" "$NAME"
	fi
fi

# Files holding configuration or secrets: root may write, the service's
# group may read, nobody else. Symlinks are left alone so that chown never
# follows one out of /etc/switchboard.
for f in $OWNED_FILES; do
	if [ -f "$f" ] && [ ! -L "$f" ]; then
		chown "root:$NAME" "$f"
		chmod 0640 "$f"
	fi
done

# The state directory is created by systemd (StateDirectory=) at first start;
# if an older install or an operator made it, make sure the service owns it.
if [ -d "$STATE_DIR" ] && [ ! -L "$STATE_DIR" ]; then
	chown -R "$NAME:$NAME" "$STATE_DIR"
	chmod 0750 "$STATE_DIR"
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ "$upgrade" = yes ]; then
		# Only a unit that was running is restarted onto the new binary.
		systemctl try-restart "$UNIT" >/dev/null 2>&1 || true
	fi
fi

if [ "$upgrade" = no ]; then
	echo "$HINT"
fi
exit 0
