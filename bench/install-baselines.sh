#!/usr/bin/env bash
# Installs the baselines the bench harness compares onsale with, from
# Debian's packages, when they are missing: redis-server and PostgreSQL.
# The harness starts its own instances on loopback ports in temporary
# directories; this script only installs. It stops any service the
# packages start by themselves, so that nothing else competes for the CPU.
#
#   sudo bench/install-baselines.sh        # or as root
set -euo pipefail

have_redis() { command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; }
have_postgres() {
	command -v postgres >/dev/null 2>&1 && return 0
	compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

pkgs=()
if have_redis; then
	echo "redis-server: installed ($(redis-server --version | head -c 80))"
else
	pkgs+=(redis-server)
fi
if have_postgres; then
	echo "postgresql: installed"
else
	pkgs+=(postgresql)
fi
if [ ${#pkgs[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "need root to install ${pkgs[*]} (run with sudo)" >&2
	exit 1
fi
echo "installing: ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null

# The packages may start system-wide services; the harness runs its own.
if command -v service >/dev/null 2>&1; then
	service redis-server stop >/dev/null 2>&1 || true
	service postgresql stop >/dev/null 2>&1 || true
fi

have_redis || { echo "redis-server still missing after install" >&2; exit 1; }
have_postgres || { echo "postgres still missing after install" >&2; exit 1; }
id postgres >/dev/null 2>&1 || echo "note: no postgres user; as root the harness needs one to run PostgreSQL" >&2
echo "baselines installed"
