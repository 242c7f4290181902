#!/bin/sh
# Installs the Debian packages named on the command line that are missing,
# and says which. Used by `make run`, `make test` and `make bench`; runs
# apt-get as root, or through sudo.
set -eu
missing=""
for p in "$@"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
echo "longcall: installing missing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Server packages (apache2, nginx, squid) start their stock service on port
# 80/3128 when installed; two of them on one port make dpkg fail. Where the
# machine has no policy-rc.d of its own, forbid service starts for the
# duration of this install only (the tests start their own instances).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from longcall conf/ensure-packages.sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT INT TERM
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "longcall: installed:$missing"
