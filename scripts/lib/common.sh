# shellcheck shell=bash
#! Shared helpers for scripts/dev and scripts/test: install what is missing, start PostgreSQL.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ROOT

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

APT_UPDATED=""
# apt_install PKG... : installs Debian packages when running as root, else explains how.
apt_install() {
  if ! is_root; then
    die "missing $*: run 'sudo apt-get install -y $*' and try again"
  fi
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ensure_postgres: puts initdb/pg_ctl/postgres on PATH, installing Debian's postgresql if needed.
ensure_postgres() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && PATH="$PATH:$dir"
  done
  if ! command -v initdb >/dev/null || ! command -v pg_ctl >/dev/null; then
    apt_install postgresql
    for dir in /usr/lib/postgresql/*/bin; do
      [ -x "$dir/initdb" ] && PATH="$PATH:$dir"
    done
  fi
  command -v initdb >/dev/null || die "initdb not found after installing postgresql"
  # initdb and postgres refuse to run as root: tests and scripts/dev run them as 'postgres'.
  if is_root && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  export PATH
}

# apt_install_quiet BIN PKG...: apt_install for a package that ships a service, without leaving the
# service running: a policy-rc.d of our own (when none exists) tells the maintainer scripts not to start
# it, and any BIN process that appeared during the install is stopped by its process id.
apt_install_quiet() {
  local bin="$1"; shift
  local before policy=/usr/sbin/policy-rc.d ours=""
  before=" $(pgrep -x "$bin" | tr "\n" " " || true) "
  if is_root && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
  fi
  apt_install "$@" || { [ -n "$ours" ] && rm -f "$policy"; return 1; }
  [ -n "$ours" ] && rm -f "$policy"
  local pid
  for pid in $(pgrep -x "$bin"); do
    case "$before" in *" $pid "*) ;; *) say "stopping $bin ($pid) started by the install"; kill "$pid" 2>/dev/null || true ;; esac
  done
}

# ensure_sbin_tool BIN PKG: BIN on PATH (Debian puts nats-server and haproxy in /usr/sbin, which is not
# on every user's PATH), installing PKG when it is missing.
ensure_sbin_tool() {
  local bin="$1" pkg="$2"
  case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin" ;; esac
  command -v "$bin" >/dev/null || apt_install_quiet "$bin" "$pkg"
  command -v "$bin" >/dev/null || die "$bin not found after installing $pkg"
  export PATH
}

# ensure_nats: nats-server (Debian's package; 2.9.10 on Debian 12) for the cluster tests and DEV_CLUSTER.
ensure_nats() { ensure_sbin_tool nats-server nats-server; }

# ensure_haproxy: HAProxy (Debian's package) in front of a cluster's brokers, with docker/haproxy.cfg.
ensure_haproxy() { ensure_sbin_tool haproxy haproxy; }

# ensure_python_deps: a virtualenv in .venv with tests/requirements.txt, first on PATH.
ensure_python_deps() {
  command -v python3 >/dev/null || apt_install python3 python3-venv python3-pip
  local venv="$ROOT/.venv"
  if [ ! -x "$venv/bin/python3" ]; then
    say "creating $venv"
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
  fi
  local stamp="$venv/.requirements.sha"
  local want
  want="$(sha256sum "$ROOT/tests/requirements.txt" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "pip install -r tests/requirements.txt"
    # A registry hiccup should not fail a whole CI run: try three times.
    local try
    for try in 1 2 3; do
      "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt" && break
      [ "$try" = 3 ] && die "pip install -r tests/requirements.txt failed three times"
      say "pip install failed (try $try of 3); retrying in 5 s"
      sleep 5
    done
    echo "$want" >"$stamp"
  fi
  export PATH="$venv/bin:$PATH"
}

# ensure_nextest: cargo-nextest runs each test in its own process (parallel, with timeouts).
ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    say "cargo install cargo-nextest"
    cargo install cargo-nextest --locked
  fi
}

# as_pg CMD...: PostgreSQL refuses to run as root, so root runs it as the 'postgres' user.
as_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres DIR PORT: initdb DIR when empty, then start PostgreSQL on 127.0.0.1:PORT (socket in
# DIR) and create the database 'mqtt'. The parent of DIR must be reachable by 'postgres' when root.
start_postgres() {
  local pgdata="$1" port="$2"
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    say "initializing PostgreSQL in $pgdata"
    mkdir -p "$pgdata"
    is_root && chown postgres: "$pgdata"
    as_pg initdb -D "$pgdata" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  is_root && chown -R postgres: "$pgdata"
  if ! as_pg pg_ctl -D "$pgdata" status >/dev/null 2>&1; then
    say "starting PostgreSQL on 127.0.0.1:$port"
    as_pg pg_ctl -D "$pgdata" -l "$pgdata/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$pgdata" start >/dev/null
  fi
  as_pg createdb -h 127.0.0.1 -p "$port" -U postgres mqtt 2>/dev/null || true
}
