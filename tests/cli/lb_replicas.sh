#!/bin/bash
# Two `dapx serve` replicas behind HAProxy (deploy/haproxy.cfg, as shipped): requests through
# the balancer are answered by both replicas; a streamed one passes through to its [DONE]; after
# one replica is killed, every request is still answered (by the other). Loopback only, bounded.
# Exit 77 (skipped, with the reason) when haproxy is not installed.
set -u
DAPX=$1
MODEL=$2
CFG=$3
command -v haproxy >/dev/null || { echo "SKIP: haproxy is not installed (scripts/install-deps.sh installs it)"; exit 77; }
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$DIR"/*.log; do echo "== $f"; cat "$f"; done; exit 1; }

start_replica() {  # $1: name; prints the port
  "$DAPX" serve -m "$MODEL" --port 0 --threads 1 2> "$DIR/$1.log" &
  PIDS+=($!)
  echo $! > "$DIR/$1.pid"
}
port_of() {  # waits at most 60 s (generous: a replica starts in a second)
  for _ in $(seq 1 1200); do
    local p
    p=$(sed -n 's/.* on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$DIR/$1.log")
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.05
  done
  return 1
}
free_port() {
  for p in $(shuf -i 20000-60000 -n 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
# One request on a fresh connection; prints the whole reply.
request() {  # $1: port, $2: body
  exec 3<>/dev/tcp/127.0.0.1/$1 || return 1
  printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "${#2}" "$2" >&3
  timeout 60 cat <&3
  exec 3<&-
}
served() { grep -c 'POST /v1/completions 200' "$DIR/$1.log"; }

start_replica r1
start_replica r2
P1=$(port_of r1) || fail "replica 1 did not start"
P2=$(port_of r2) || fail "replica 2 did not start"
LB=$(free_port) || fail "no free port for the balancer"
DAPX_LB_PORT=$LB DAPX_REPLICA_1=127.0.0.1:$P1 DAPX_REPLICA_2=127.0.0.1:$P2 \
  haproxy -f "$CFG" -db > "$DIR/haproxy.log" 2>&1 &
PIDS+=($!)
LB_UP=""
for _ in $(seq 1 1200); do (exec 3<>/dev/tcp/127.0.0.1/$LB) 2>/dev/null && { LB_UP=1; break; }; sleep 0.05; done
[ -n "$LB_UP" ] || fail "the balancer did not listen on port $LB within 60 s"

BODY='{"prompt": "The river", "max_tokens": 3, "temperature": 0}'
for i in $(seq 1 6); do
  request "$LB" "$BODY" | grep -q '"object":"text_completion"' || fail "request $i through the balancer"
done
[ "$(served r1)" -ge 1 ] || fail "replica 1 served nothing"
[ "$(served r2)" -ge 1 ] || fail "replica 2 served nothing"
STREAM='{"prompt": "The river", "max_tokens": 3, "temperature": 0, "stream": true}'
request "$LB" "$STREAM" | grep -q 'data: \[DONE\]' || fail "a stream through the balancer"

kill -9 "$(cat "$DIR/r1.pid")"
BEFORE=$(served r2)
for i in $(seq 1 4); do
  request "$LB" "$BODY" | grep -q '"object":"text_completion"' || fail "request $i after replica 1 died"
done
[ "$(served r2)" -eq $((BEFORE + 4)) ] || fail "replica 2 did not take the requests of the dead one"
echo "balancer: both replicas served; a killed replica was routed around: ok"
