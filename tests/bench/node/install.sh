#!/bin/sh
# install.sh - install the Node.js reference sync's dependencies (the exact
# versions in package.json / package-lock.json) into node_modules beside
# this script. Does nothing when they are installed already; otherwise runs
# `npm ci` (`npm install` when there is no lock file). Idempotent.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

die() {
	echo "install.sh: $*" >&2
	exit 1
}

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 20 or later is needed)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (it comes with Node.js; on Debian: apt-get install npm)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
	die "node $(node --version) is too old (Node.js 20 or later is needed)"

# Installed already when every dependency is there at the version asked for.
if node -e '
const deps = require("./package.json").dependencies;
for (const [name, version] of Object.entries(deps)) {
  let got;
  try { got = require(`./node_modules/${name}/package.json`).version; } catch { process.exit(1); }
  if (got !== version) process.exit(1);
}' 2>/dev/null; then
	echo "install.sh: dependencies already installed in $here/node_modules"
	exit 0
fi

if [ -f package-lock.json ]; then
	cmd="npm ci"
else
	# A lock file that names no registry: npm ci takes the configured one.
	cmd="npm install --omit-lockfile-registry-resolved"
fi
# --prefer-offline: packages in npm's cache are taken from it, not fetched again.
if ! $cmd --prefer-offline --no-audit --no-fund --loglevel=error; then
	die "'$cmd' failed in $here: is the npm registry reachable (npm config get registry: $(npm config get registry 2>/dev/null))?"
fi
echo "install.sh: dependencies installed in $here/node_modules"
