#!/usr/bin/env bash
# Starts the sample app: installs npm packages if needed, uses the memcached at MEMCACHED_SERVERS
# (default 127.0.0.1:11211), starts a local one for the demo when none answers there, and runs
# with the cache degraded (saying so) when there is no memcached binary at all.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[start:sample] %s\n' "$*"; }

if [ ! -d node_modules/@nestjs/core ]; then
  say "installing npm packages (first run)"
  npm install --no-audit --no-fund
fi

env_file_value() { [ -f .env ] && grep -E "^$1=" .env | tail -n 1 | cut -d= -f2- || true; }
servers=${MEMCACHED_SERVERS:-$(env_file_value MEMCACHED_SERVERS)}
servers=${servers:-127.0.0.1:11211}
export MEMCACHED_SERVERS=$servers
export MEMCACHED_KEY_PREFIX=${MEMCACHED_KEY_PREFIX:-$(env_file_value MEMCACHED_KEY_PREFIX)}
export MEMCACHED_KEY_PREFIX=${MEMCACHED_KEY_PREFIX:-sample:}
export LOG_LEVEL=${LOG_LEVEL:-$(env_file_value LOG_LEVEL)}
export LOG_LEVEL=${LOG_LEVEL:-debug}

first=${servers%%,*}
first=${first#*@}
host=${first%%:*}
rest=${first#"$host"}
port=${rest#:}
port=${port%%:*}
port=${port:-11211}

reachable() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if reachable; then
  say "using memcached at $host:$port"
elif [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; then
  say "WARNING: no memcached answers at $host:$port; the app runs with the cache degraded (every read goes to the database)"
else
  bin=$(command -v memcached || true)
  [ -z "$bin" ] && [ -x /usr/bin/memcached ] && bin=/usr/bin/memcached
  if [ -z "$bin" ]; then
    say "WARNING: no memcached binary found (install it with: apt-get install memcached)."
    say "The app runs with the cache degraded: every request is served from the database."
  else
    mkdir -p .sample-memcached
    user_flag=()
    [ "$(id -u)" = 0 ] && user_flag=(-u memcache)
    "$bin" -d -l 127.0.0.1 -p "$port" -m 64 -U 0 "${user_flag[@]}" || true
    for _ in $(seq 1 50); do reachable && break; sleep 0.1; done
    if reachable; then
      # memcached drops privileges before writing its pid file, so record the pid ourselves
      pgrep -n -f -- "memcached .*-p $port" > .sample-memcached/memcached.pid || true
      say "no memcached was running on $host:$port: started one for the demo (pid $(cat .sample-memcached/memcached.pid));"
      say "stop it with: kill \$(cat .sample-memcached/memcached.pid)"
    else
      say "WARNING: could not start memcached on port $port; the app runs with the cache degraded"
    fi
  fi
fi

say "compiling the sample app (into .sample-build/, outside the published dist/)"
node node_modules/typescript/bin/tsc -p tsconfig.sample.json
exec node .sample-build/sample-app/main.js
