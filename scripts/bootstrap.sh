#!/bin/sh
# bootstrap.sh: install the Debian packages s2 needs to build, run and test, when missing.
# Idempotent and quiet when everything is there; never starts system services.
#   scripts/bootstrap.sh            build + run dependencies
#   scripts/bootstrap.sh test       also what the test suite needs
set -eu

pkgs="gcc make pkg-config libc6-dev libsqlite3-dev libsodium-dev libmicrohttpd-dev
libcurl4-openssl-dev libjansson-dev libyaml-dev libseccomp-dev libgit2-dev libpq-dev"
if [ "${1:-}" = test ]; then
    pkgs="$pkgs libcmocka-dev curl procps jq sqlite3 git wabt"
fi

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "bootstrap: installing$missing" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "bootstrap: need root (or sudo) to install:$missing" >&2
        exit 1
    }
    sudo=sudo
fi
# Keep Debian's maintainer scripts from starting services we did not ask for.
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    made_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ "$made_policy" = 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
echo "bootstrap: done" >&2
