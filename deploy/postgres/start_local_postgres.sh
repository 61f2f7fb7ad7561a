#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster (Debian's postgresql package) on 127.0.0.1 for
# the `postgres` tests and prints its URL. Run as root; the server runs as user postgres.
#   usage: start_local_postgres.sh DIR [PORT]     stop: pg_ctl -D DIR/data stop (as postgres)
set -euo pipefail
dir=${1:?usage: start_local_postgres.sh DIR [PORT]}
port=${2:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
mkdir -p "$dir"
chown postgres "$dir"
as_pg() { runuser -u postgres -- "$@"; }
if [ ! -f "$dir/data/PG_VERSION" ]; then
  echo postgres > "$dir/pwfile"; chown postgres "$dir/pwfile"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
    --auth-local=trust --auth-host=md5 >"$dir/initdb.log"
fi
# Loopback only; the socket lives in $dir so nothing touches /var/run/postgresql.
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
psql_pg() { as_pg psql -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ -z "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname='burnqed'")" ]; then
  psql_pg -c "CREATE ROLE burnqed LOGIN CREATEDB PASSWORD 'burnqed'"
  psql_pg -c "CREATE DATABASE burnqed OWNER burnqed"
fi
echo "postgresql://burnqed:burnqed@127.0.0.1:$port/burnqed"
