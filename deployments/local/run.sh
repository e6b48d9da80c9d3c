#!/usr/bin/env bash
# Runs the whole pipeline on this machine (make run): Redis at REDIS_ADDR if
# it answers, else a redis-server of our own with its data in .run/redis;
# then ingest, two analyzers and the api. Ctrl-C stops all it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

export REDIS_ADDR=${REDIS_ADDR:-127.0.0.1:6379}
host=${REDIS_ADDR%:*}
port=${REDIS_ADDR##*:}
INGEST_ADDR=${INGEST_ADDR:-127.0.0.1:8080}
API_ADDR=${API_ADDR:-127.0.0.1:8081}
ANALYZER_ADDRS=${ANALYZER_ADDRS:-127.0.0.1:8082 127.0.0.1:8083}
mkdir -p .run/logs

pids=()
stop_all() {
	trap - INT TERM EXIT
	echo
	echo "stopping…"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "stopped"
}
trap stop_all INT TERM EXIT

ping_redis() {
	REDISCLI_AUTH=${REDIS_PASSWORD:-} redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG
}

if ping_redis; then
	echo "redis:    using the Redis that answers at $REDIS_ADDR"
else
	command -v redis-server >/dev/null || { echo "redis-server not found: sudo apt-get install -y redis-server" >&2; exit 1; }
	mkdir -p .run/redis
	redis-server --port "$port" --bind "$host" --dir "$PWD/.run/redis" --appendonly yes --appendfsync everysec \
		--save "" ${REDIS_PASSWORD:+--requirepass "$REDIS_PASSWORD"} >.run/logs/redis.log 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do ping_redis && break; sleep 0.1; done
	ping_redis || { echo "redis-server did not start; see .run/logs/redis.log" >&2; exit 1; }
	echo "redis:    started redis-server on $REDIS_ADDR (data in .run/redis)"
fi

HTTP_ADDR=$INGEST_ADDR bin/ingest >.run/logs/ingest.log 2>&1 &
pids+=($!)
i=0
for addr in $ANALYZER_ADDRS; do
	i=$((i + 1))
	HTTP_ADDR=$addr CONSUMER_NAME=local-analyzer-$i bin/analyzer >".run/logs/analyzer-$i.log" 2>&1 &
	pids+=($!)
done
HTTP_ADDR=$API_ADDR bin/api >.run/logs/api.log 2>&1 &
pids+=($!)

for url in "http://$INGEST_ADDR/health" "http://$API_ADDR/health"; do
	for _ in $(seq 50); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done

cat <<MSG
ingest:   http://$INGEST_ADDR   POST /metrics · /health /ready /prometheus
api:      http://$API_ADDR   GET /analyze /anomalies /alerts /devices · /health /ready /prometheus
analyzer: $(for a in $ANALYZER_ADDRS; do printf 'http://%s/prometheus ' "$a"; done)
logs:     .run/logs/
Press Ctrl-C to stop.
MSG

# Stop everything as soon as any process ends.
wait -n "${pids[@]}"
echo "a process exited; see .run/logs/" >&2
