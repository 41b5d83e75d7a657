#!/usr/bin/env bash
# A local six-node Redis Cluster (three primaries with a replica each) for the benchmarks, on
# ports BASE_PORT..BASE_PORT+5 (7101 by default), its files in a temporary directory.
#   bench/cluster.sh start   # prints REDIS_CLUSTER_NODES=… for STORES=cluster
#   bench/cluster.sh stop
set -euo pipefail
BASE_PORT="${BASE_PORT:-7101}"
DIR="${TMPDIR:-/tmp}/auth-api-bench-cluster"
ports=$(seq "$BASE_PORT" $((BASE_PORT + 5)))
case "${1:-}" in
  start)
    mkdir -p "$DIR"
    for port in $ports; do
      redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-node-timeout 1000 \
        --cluster-config-file "nodes-$port.conf" --dir "$DIR" --save "" --appendonly no \
        --daemonize yes --pidfile "$DIR/$port.pid" --logfile "$DIR/$port.log"
    done
    for port in $ports; do
      until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
    done
    # shellcheck disable=SC2046
    redis-cli --cluster create $(for p in $ports; do echo "127.0.0.1:$p"; done) --cluster-replicas 1 --cluster-yes >/dev/null
    until redis-cli -p "$BASE_PORT" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
    echo "REDIS_CLUSTER_NODES=redis://127.0.0.1:$BASE_PORT,redis://127.0.0.1:$((BASE_PORT + 1))"
    ;;
  stop)
    for port in $ports; do
      [ -f "$DIR/$port.pid" ] && kill "$(cat "$DIR/$port.pid")" 2>/dev/null || true
    done
    rm -rf "$DIR"
    ;;
  *) echo "usage: bench/cluster.sh start|stop" >&2; exit 2 ;;
esac
