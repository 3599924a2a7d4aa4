#!/bin/bash
# dapx serve end to end: start on a free port, answer a completion over plain HTTP (bash's
# /dev/tcp, no curl needed), then SIGTERM: the process must exit 0.
set -u
DAPX=$1
MODEL=$2
LOG=$(mktemp)
"$DAPX" serve -m "$MODEL" --port 0 --threads 1 2> "$LOG" &
PID=$!
PORT=""
# Waits for the port at most 60 s (generous: the tiny model loads in a second), then fails.
for _ in $(seq 1 600); do
  PORT=$(sed -n 's/.* on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$LOG")
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "no port in the log after 60 s:"; cat "$LOG"; kill $PID; exit 1; }
BODY='{"prompt": "The river", "max_tokens": 3, "temperature": 0}'
exec 3<>/dev/tcp/127.0.0.1/$PORT
printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "${#BODY}" "$BODY" >&3
REPLY=$(cat <&3)
exec 3<&-
echo "$REPLY" | grep -q '"object":"text_completion"' || { echo "bad reply: $REPLY"; kill $PID; exit 1; }
kill -TERM $PID
wait $PID
RC=$?
cat "$LOG"
rm -f "$LOG"
[ $RC -eq 0 ] || { echo "dapx serve exited $RC after SIGTERM"; exit 1; }
echo "serve smoke: ok"
