#!/bin/sh
# Install Debian's OpenSSH server if it is missing (CI; the DVC SSH-remote round trip in
# tests/integration/test_lab_remote.py starts its own sshd on 127.0.0.1). Needs root (or sudo)
# and apt-get. Installing never starts a system-wide daemon here: the test runs sshd itself.
set -eu
if [ -x /usr/sbin/sshd ]; then
    /usr/sbin/sshd -V 2>&1 | head -n 1 || true
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update
# RUNLEVEL=1: invoke-rc.d does not start the service from the package scripts.
DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y --no-install-recommends openssh-server
/usr/sbin/sshd -V 2>&1 | head -n 1 || true
