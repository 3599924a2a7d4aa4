#!/usr/bin/env bash
# A hostile-but-fair probe of `dapx serve` over loopback: slow and idle connections, oversized
# and malformed lengths, huge heads, pipelining, SIGTERM during generations. Prints a Markdown
# table (case, what came back, seconds to the answer). Plain bash (/dev/tcp), no curl.
#   scripts/probe-serve.sh build/apps/dapx MODEL_DIR > table.md
set -u
DAPX=$1 MODEL=$2
LOG=$(mktemp)
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l | xargs printf '%.2f'; }

start_server() {
  "$DAPX" serve -m "$MODEL" --port 0 --threads 2 "$@" 2> "$LOG" &
  PID=$!
  PORT=""
  for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.* on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$LOG")
    [ -n "$PORT" ] && break
    sleep 0.05
  done
  [ -n "$PORT" ] || { echo "no port in the log:"; cat "$LOG"; exit 1; }
}
stop_server() { kill -TERM "$PID" 2> /dev/null; wait "$PID" 2> /dev/null; }

# One request on a fresh connection; prints the status line and the first 100 body bytes.
request() {  # raw request text
  local fd reply
  exec {fd}<> "/dev/tcp/127.0.0.1/$PORT" || { echo "connect failed"; return; }
  printf '%b' "$1" >&$fd
  reply=$(timeout 60 cat <&$fd | tr -d '\r')
  exec {fd}<&-
  echo "$(head -1 <<< "$reply") | $(sed -n '/^$/,$p' <<< "$reply" | tr -d '\n' | cut -c1-110)"
}
post() {  # path body
  printf 'POST %s HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s' "$1" "${#2}" "$2"
}
row() { printf '| %s | %s | %s |\n' "$1" "$(sed 's/|/\\|/g' <<< "$2")" "$3"; }

echo "| case | answer (status line, body start) | seconds |"
echo "|---|---|---|"
start_server
GOOD=$(post /v1/completions '{"prompt": "The river", "max_tokens": 3, "temperature": 0}')
HEALTH='GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'

# 1. Slow and idle connections, then a good request and /health.
for n in 40 200; do
  fds=()
  for _ in $(seq 1 $n); do
    exec {fd}<> "/dev/tcp/127.0.0.1/$PORT" && fds+=("$fd") && printf 'POST /v1/completions HTTP/1.1\r\n' >&$fd
  done
  ( for _ in 1 2 3; do for fd in "${fds[@]}"; do printf 'X-Slow: 1\r\n' >&$fd 2> /dev/null; done; sleep 1; done ) &
  TRICKLE=$!
  T=$(now); r=$(request "$HEALTH"); row "/health beside $n connections trickling header lines" "$r" "$(since "$T")"
  T=$(now); r=$(request "$GOOD"); row "completion beside $n connections trickling header lines" "$r" "$(since "$T")"
  wait "$TRICKLE"
  T=$(now); cut=0
  for fd in "${fds[@]}"; do
    if timeout 30 cat <&$fd | grep -q "408"; then cut=$((cut + 1)); fi
    exec {fd}<&-
  done
  row "the $n tricklers cut off with 408" "$cut of $n" "$(since "$T") (after the last)"
done
fds=()
for _ in $(seq 1 200); do exec {fd}<> "/dev/tcp/127.0.0.1/$PORT" && fds+=("$fd"); done
T=$(now); r=$(request "$GOOD"); row "completion beside 200 silent connections" "$r" "$(since "$T")"
for fd in "${fds[@]}"; do exec {fd}<&-; done

# 2. Lengths and heads judged before any body is read.
for cl in 10485760 -1 1e20; do
  T=$(now); r=$(request "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: $cl\r\n\r\n0123456789")
  row "Content-Length: $cl, 10 bytes sent" "$r" "$(since "$T")"
done
BIG=$(head -c 100000 /dev/zero | tr '\0' a)
T=$(now); r=$(request "GET /health HTTP/1.1\r\nX-Big: $BIG\r\n\r\n"); row "a 100 KB header" "$r" "$(since "$T")"

# 3. Pipelining: three GETs, then two POSTs and a GET, in one write.
for kind in gets posts; do
  exec {fd}<> "/dev/tcp/127.0.0.1/$PORT"
  if [ $kind = gets ]; then
    printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&$fd
  else
    B='{"prompt": "a", "max_tokens": 1}'
    printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sPOST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "${#B}" "$B" "${#B}" "$B" >&$fd
  fi
  T=$(now); n=$(timeout 30 cat <&$fd | grep -o 'HTTP/1.1 200' | wc -l); exec {fd}<&-
  row "pipelined: $kind (3 requests in one write)" "$n answers 200" "$(since "$T")"
done

# 4. SIGTERM during a non-streamed and a streamed generation.
for stream in false true; do
  exec {fd}<> "/dev/tcp/127.0.0.1/$PORT"
  B="{\"prompt\": \"x\", \"max_tokens\": 4000, \"ignore_eos\": true, \"stream\": $stream}"
  printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "${#B}" "$B" >&$fd
  sleep 0.5
  kill -TERM "$PID"
  reply=$(timeout 30 cat <&$fd | tr -d '\r'); exec {fd}<&-
  wait "$PID"; rc=$?
  if [ $stream = true ]; then
    r="$(head -1 <<< "$reply") | last events: $(grep '^data:' <<< "$reply" | tail -2 | cut -c1-90 | tr '\n' ' ')"
  else
    r="$(head -1 <<< "$reply") | $(sed -n '/^$/,$p' <<< "$reply" | tr -d '\n' | cut -c1-110)"
  fi
  row "SIGTERM during a generation, stream=$stream (exit code $rc)" "$r" "-"
  start_server
done
stop_server
rm -f "$LOG"
