#!/bin/sh
# switchboard-agent: deb postrm / rpm %postun. On purge (deb only) deletes the unit's
# enablement, the state directory, the secrets and the system user.
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

NAME=switchboard-agent                  # package, system user and group
UNIT=switchboard-agent.service
STATE_DIR=/var/lib/switchboard-agent    # the unit's StateDirectory= and the user's home
GECOS="Switchboard PBX agent"
# Files that belong to the service: the shipped config and the secrets an
# operator creates. Given to root:$NAME 0640 so that nobody else can read them.
OWNED_FILES="/etc/switchboard/agent.conf /etc/switchboard/agent.token /etc/switchboard/ami.secret"
# Deleted on purge besides the conffiles dpkg removes itself.
PURGE_FILES="/etc/switchboard/agent.token /etc/switchboard/ami.secret"
HINT="switchboard-agent is installed but not started. Put the agent token in /etc/switchboard/agent.token and the AMI secret in /etc/switchboard/ami.secret (AMI user: /usr/share/doc/switchboard-agent/manager.conf.example), set server= in /etc/switchboard/agent.conf, run 'switchboard-agent check --config /etc/switchboard/agent.conf', then 'systemctl enable --now switchboard-agent'."

# ---- body: identical in agent-postremove.sh and switchboard-postremove.sh ----

# deb: $1 = remove | purge | upgrade | disappear | failed-upgrade | abort-*
# rpm: $1 = 0 on erase, 1 on upgrade.
case "$1" in
remove | 0)
	# Keep the user, the state and the secrets: removing the package is not
	# forgetting the data (RPM never deletes them, following Fedora policy).
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	exit 0
	;;
purge) ;;
*) exit 0 ;;
esac

# Purge (deb only): forget everything this package created.

# Enablement symlinks (`systemctl enable` made them; the unit file is gone
# now, so systemctl disable cannot be used).
for link in /etc/systemd/system/*.wants/"$UNIT" /etc/systemd/system/*.requires/"$UNIT"; do
	if [ -L "$link" ]; then
		rm -f "$link"
	fi
done

if [ -n "$STATE_DIR" ] && [ -d "$STATE_DIR" ]; then
	rm -rf "$STATE_DIR"
fi
for f in $PURGE_FILES; do
	rm -f "$f"
done
# dpkg already removed the conffiles; drop the directory if nothing else (the
# other Switchboard package, an operator's file) is left in it.
rmdir /etc/switchboard 2>/dev/null || true

if getent passwd "$NAME" >/dev/null; then
	if command -v deluser >/dev/null 2>&1; then
		deluser --system --quiet "$NAME" >/dev/null 2>&1 || userdel "$NAME"
	else
		userdel "$NAME"
	fi
fi
if getent group "$NAME" >/dev/null; then
	if command -v delgroup >/dev/null 2>&1; then
		delgroup --system --only-if-empty --quiet "$NAME" >/dev/null 2>&1 || groupdel "$NAME"
	else
		groupdel "$NAME"
	fi
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
