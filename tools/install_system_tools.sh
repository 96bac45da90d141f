#!/usr/bin/env bash
# The system programs the test suite runs for real, installed from Debian's packages when
# the machine lacks them and may install them (root, or sudo): the suite fails, never skips,
# without them.
#   promtool (package prometheus): checks and unit-tests the alert rules;
#   nginx (package nginx-light): replays the rendered Ingress rules in the edge attacker tests,
#   with the headers-more module (libnginx-mod-http-headers-more-filter) that the 429 +
#   Retry-After snippet on AKS's application routing uses.
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || missing+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so ] \
    || missing+=(libnginx-mod-http-headers-more-filter)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install_system_tools: missing ${missing[*]} (Debian packages) and not root: install them, then run again" >&2
        exit 1
    fi
    SUDO="sudo"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system_tools: missing ${missing[*]} and no apt-get: install promtool and nginx by hand" >&2
    exit 1
fi
echo "installing ${missing[*]} (Debian packages)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
