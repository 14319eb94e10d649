#!/usr/bin/env bash
# Instructions executed by one HTTP bench server (valgrind --tool=callgrind counts instructions,
# whatever the neighbours do): startup, 400 warm-up requests over 20 ids, then N requests to one
# id. Run it twice with two N and divide the difference by the difference of N: instructions per
# request (2500 and 12500: with fewer requests JIT compilation still runs in the measured ones,
# and pairs vary by ±0.15M instructions). Needs a memcached at MEMCACHED (default 127.0.0.1:11211) and, for -near variants, NATS.
# usage: [CONNS=10] bash bench/callgrind-http.sh VARIANT N      e.g. ours-controller-near 12500
# Counts still move between runs of one variant (by up to ±0.07M with 10 connections, ±0.06M
# with CONNS=1, when the two N differ by 5,000): compare variants within a pair of runs made back
# to back; N = 2500 and 22500 (20,000 apart) divides that spread by four.
set -u
v=$1; n=$2; port=$((3400 + RANDOM % 500))
cd "$(dirname "$0")/.."
mkdir -p /tmp/prof
rm -f /tmp/prof/cg.out.$v.$n
VARIANT=$v SIZE=1k PORT=$port MEMCACHED=${MEMCACHED:-127.0.0.1:11211} valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file=/tmp/prof/cg.out.$v.$n node --import ./scripts/ts-register.mjs bench/http/server.ts > /tmp/prof/cg.log.$v.$n 2>&1 &
pid=$!
for i in $(seq 1 300); do curl -s -o /dev/null http://127.0.0.1:$port/__stats && break; sleep 1; done
for i in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$port/users/$(( (i % 20) + 1 ))"; done
for i in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$port/users/$(( (i % 20) + 1 ))"; done
npx autocannon -c ${CONNS:-10} -a $n "http://127.0.0.1:$port/users/7" > /dev/null 2>&1
kill -TERM $pid; wait $pid 2>/dev/null
grep -E "^summary|^totals" /tmp/prof/cg.out.$v.$n | head -1
