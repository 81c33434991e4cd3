#!/bin/sh
# switchboard-agent: deb prerm / rpm %preun. Stops the unit when the package is removed
# (not on upgrade: postinstall of the new version restarts it).
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

# ---- body: identical in agent-preremove.sh and switchboard-preremove.sh ----

# deb: $1 = remove | upgrade | deconfigure | failed-upgrade
# rpm: $1 = 0 on erase, 1 on upgrade.
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl stop "$UNIT" >/dev/null 2>&1 || true
fi
if [ "$1" = 0 ]; then
	# RPM has no purge: erasing is the last chance to drop the enablement
	# symlinks, as Fedora's %systemd_preun does. (On Debian, a removed but
	# not purged package keeps its enablement, like any other service.)
	systemctl --no-reload disable "$UNIT" >/dev/null 2>&1 || true
fi
exit 0
