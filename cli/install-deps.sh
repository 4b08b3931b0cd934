#!/bin/sh
# install-deps.sh - install, from Debian 12 packages, what notion-sync needs
# to build, run and be tested (debhelper and lintian for
# tests/check-debian.sh, which builds and checks the Debian packages;
# clang-format-14 for tests/check-format.sh).
# Installs only what is missing. Runs apt-get directly as root, through sudo
# otherwise.
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config
libcurl4-openssl-dev libjson-c-dev libpq-dev libssl-dev libfcgi-dev
libfcgi-bin spawn-fcgi libcmocka-dev postgresql-15 postgresql-15-cron
postgresql-client-15 nginx-light python3 openssl curl ca-certificates
debhelper dh-autoreconf lintian clang-format-14"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps the packages from starting system-wide services:
# notion-sync starts its own private PostgreSQL and nginx.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
