#!/usr/bin/env bash
# Install what the tests need: dovecot-imapd and openssl for tests/servers.py's private Dovecot,
# and systemd for `systemd-analyze verify` of the unit file.
#
# Idempotent: installs only what is missing, so running it on every CI job costs nothing once
# the packages are there.  The tests start Dovecot themselves from a temporary directory with
# a generated config; the system dovecot service is never used, so it is kept from starting
# during the install.  Called by .ci/run.
set -euo pipefail

MAIL_TEST_USER=mailbot-test
# Debian's hook that invoke-rc.d / deb-systemd-invoke consult before starting a service.
POLICY_RC=/usr/sbin/policy-rc.d

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "dovecot-install: need root (or sudo) to install packages" >&2
  exit 1
fi

have_dovecot() {
  # /usr/sbin is often missing from a non-root PATH.
  command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]
}

missing=()
have_dovecot || missing+=(dovecot-imapd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# systemd-analyze, for the test that verifies systemd/mailbot.service (no service is started).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)

created_policy=""
remove_policy() {
  if [ -n "$created_policy" ]; then
    "${SUDO[@]}" rm -f "$POLICY_RC"
  fi
}
trap remove_policy EXIT

if [ "${#missing[@]}" -gt 0 ]; then
  echo "dovecot-install: installing ${missing[*]}"
  # Exit code 101 from policy-rc.d means "action forbidden": invoke-rc.d and
  # deb-systemd-invoke then skip starting the package's service (it would otherwise listen
  # on ports 143/993 of every interface, with or without systemd).  Only a policy file we
  # created is removed afterwards.
  if [ ! -e "$POLICY_RC" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY_RC" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY_RC"
    created_policy=1
  fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}"
fi

# Dovecot will not run mail processes as root; when the tests run as root their mailboxes
# belong to this account.  tests/servers.py creates it too, but doing it here once avoids a
# race between parallel test workers.
if [ "$(id -u)" -eq 0 ] && ! getent passwd "$MAIL_TEST_USER" >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$MAIL_TEST_USER"
fi

dovecot_bin=$(command -v dovecot || echo /usr/sbin/dovecot)
echo "dovecot-install: dovecot $("$dovecot_bin" --version), $(openssl version)"
