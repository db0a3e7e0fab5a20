# Sourced by scripts/run and scripts/test: start the local services a command needs when
# they are installed but not running. Never installs a server: says what is missing.

have() { command -v "$1" >/dev/null 2>&1; }

# ensure_redis PORT [DIR]: a Redis answering on 127.0.0.1:PORT, or a private one started.
ensure_redis() {
  local port=${1:-6379} dir=${2:-var}
  if .venv/bin/python - "$port" <<'PY' 2>/dev/null; then return 0; fi
import sys, redis
redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), socket_timeout=1).ping()
PY
  if ! have redis-server; then
    echo "error: no Redis answers on 127.0.0.1:$port and redis-server is not installed." >&2
    echo "       Install it (Debian: apt-get install redis-server) or set CV_BROKER_URL." >&2
    return 1
  fi
  mkdir -p "$dir"
  echo "starting a private redis-server on 127.0.0.1:$port (log: $dir/redis.log)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$(cd "$dir" && pwd)" --logfile "$(cd "$dir" && pwd)/redis.log" \
    --pidfile "$(cd "$dir" && pwd)/redis.pid"
  for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "error: redis-server did not come up on port $port" >&2
  return 1
}

# ensure_postgres: PostgreSQL answering on 127.0.0.1:5432, started when installed.
ensure_postgres() {
  if have pg_isready && pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
  if have pg_ctlcluster && [ -d /etc/postgresql ]; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 100); do
      pg_isready -q -h 127.0.0.1 -p 5432 && return 0
      sleep 0.2
    done
  fi
  echo "error: no PostgreSQL answers on 127.0.0.1:5432 and none could be started." >&2
  echo "       Install it (Debian: apt-get install postgresql) or set CV_TEST_POSTGRES_URL." >&2
  return 1
}
