#!/bin/sh
# bootstrap.sh: install the Debian packages s2 needs to build, run and test, when missing.
# Idempotent and quiet when everything is there; never starts system services.
#   scripts/bootstrap.sh            build + run dependencies
#   scripts/bootstrap.sh test       also what the test suite needs
# The browser test's packages (chromium, node) are optional: when they cannot be
# installed, that test skips and everything else still runs.
set -eu

pkgs="gcc make pkg-config libc6-dev libsqlite3-dev libsodium-dev libmicrohttpd-dev
libcurl4-openssl-dev libjansson-dev libyaml-dev libseccomp-dev libgit2-dev libpq-dev"
optional=""
if [ "${1:-}" = test ]; then
    pkgs="$pkgs libcmocka-dev curl procps jq sqlite3 postgresql git wabt"
    optional="chromium nodejs"
fi

absent() { # absent PKG...: those not installed
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            printf ' %s' "$p"
    done
}
# shellcheck disable=SC2086
missing=$(absent $pkgs)
# shellcheck disable=SC2086
missing_opt=$(absent $optional)
# npm comes inside some nodejs builds (NodeSource); Debian's own nodejs needs the npm package
if [ -n "$optional" ] && ! command -v npm >/dev/null 2>&1; then
    missing_opt="$missing_opt npm"
fi
[ -z "$missing$missing_opt" ] && exit 0

echo "bootstrap: installing$missing$missing_opt" >&2
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
$sudo apt-get update -qq >/dev/null || [ -z "$missing" ]
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$missing_opt" ]; then
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends $missing_opt >/dev/null ||
        echo "bootstrap: could not install$missing_opt: the browser test will skip" >&2
fi
if [ "$made_policy" = 1 ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
echo "bootstrap: done" >&2
