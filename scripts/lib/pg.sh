# Shared by the scripts that need a throwaway PostgreSQL server and a free
# port (bench-ledger.sh, soak.sh). Source it; it defines functions only.
#
#   free_port              print a TCP port of 127.0.0.1 that was free a moment ago
#   pg_start DIR [OPTIONS] initdb DIR/data and start a server on a free port of
#                          127.0.0.1, with its socket and log in DIR and OPTIONS
#                          as extra server settings ("-c synchronous_commit=off");
#                          sets pg_port. Installs the postgresql package first if
#                          the server binaries are missing and this runs as root
#                          (as scripts/test.sh does). As root, the server runs as
#                          the postgres user, and DIR becomes that user's.
#   pg_psql ARGS...        psql as the superuser postgres (no password: trust)
#   pg_url DATABASE        the URL of DATABASE on the server
#   pg_stop                stop the server if pg_start started it (for a trap)
#
# The server keeps PostgreSQL's default settings (fsync and synchronous_commit
# on), but for max_connections=200, and runs with glibc's malloc told to keep
# freed memory (see pg_start).

pg_bin=
pg_dir=
pg_port=
pg_as=()

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  # No python3: a random port of the ephemeral range that nothing answers on.
  local port
  for _ in $(seq 100); do
    port=$((49152 + RANDOM % 16000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "found no free port" >&2
  return 1
}

pg_find_binaries() {
  if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
      echo "PostgreSQL server binaries (initdb, pg_ctl) are missing: install the postgresql package" >&2
      return 1
    fi
    echo "==> installing the PostgreSQL server package" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  pg_bin=$(dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | head -1)")
}

pg_start() {
  local dir=$1 options=${2:-}
  pg_find_binaries
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$dir" # initdb and postgres refuse to run as root
    pg_as=(runuser -u postgres --)
  fi
  pg_port=$(free_port)
  echo "==> PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port (settings: ${options:-defaults, durable})" >&2
  "${pg_as[@]}" "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
  pg_dir=$dir
  # glibc's malloc gives memory back to the kernel as soon as 128 KiB lie
  # free at the top of a process's heap. A backend serving Plinth crosses
  # that line several times per call, and every give-back flushes the TLBs
  # of every core: about a tenth of the machine under MoveMoney load (perf),
  # none of it useful. Keeping up to 8 MiB per backend stops it; see
  # docs/configuration.md, "PostgreSQL". pgbench runs against the same
  # server, with the same setting.
  MALLOC_TRIM_THRESHOLD_=8388608 MALLOC_TOP_PAD_=1048576 \
    "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
    -o "-h 127.0.0.1 -p $pg_port -k $dir -c max_connections=200 $options" start >/dev/null
}

pg_psql() {
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -qAt "$@"
}

pg_url() {
  echo "postgres://postgres@127.0.0.1:$pg_port/$1"
}

pg_stop() {
  if [[ -n $pg_dir ]]; then
    "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
    pg_dir=
  fi
}
