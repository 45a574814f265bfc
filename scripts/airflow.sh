#!/usr/bin/env bash
# `make airflow`: Airflow standalone on 127.0.0.1:8080 running newsflow's DAGs.
#
# With no NEWSFLOW_FEEDS set, it also serves the bundled sample newsroom on 127.0.0.1 (port
# $NEWSROOM_PORT, default 8765) and points newsflow at it, so news_ingest runs green against real
# pages on a machine with no internet; the database is data/airflow-demo.sqlite. With
# NEWSFLOW_FEEDS (and any other NEWSFLOW_* settings) set, it runs against those instead.
# Ctrl-C stops everything this script started.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/data/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
# A 2-core machine: a few tasks at a time (each extraction/tagging task uses every core).
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-4}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
mkdir -p "$AIRFLOW_HOME"

pids=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping: ${pids[*]:-nothing}"
    for pid in "${pids[@]:-}"; do
        [ -n "$pid" ] && kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

if [ -z "${NEWSFLOW_FEEDS:-}" ]; then
    NEWSROOM_PORT="${NEWSROOM_PORT:-8765}"
    feeds="$AIRFLOW_HOME/newsroom-feeds.yaml"
    rm -f "$feeds"
    setsid newsflow newsroom --port "$NEWSROOM_PORT" --feeds-out "$feeds" \
        >"$AIRFLOW_HOME/newsroom.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [ -s "$feeds" ] && break; sleep 0.1; done
    if [ ! -s "$feeds" ]; then
        echo "make airflow: the sample newsroom did not start (port $NEWSROOM_PORT busy?):" >&2
        cat "$AIRFLOW_HOME/newsroom.log" >&2
        exit 1
    fi
    export NEWSFLOW_FEEDS="$feeds"
    export NEWSFLOW_ALLOW_PRIVATE=1 NEWSFLOW_PER_HOST_DELAY=0
    export NEWSFLOW_CATALOG="${NEWSFLOW_CATALOG:-$ROOT/data/airflow-demo.sqlite}"
    echo "sample newsroom on http://127.0.0.1:$NEWSROOM_PORT (feeds: $feeds)"
fi
export NEWSFLOW_DATA_DIR="${NEWSFLOW_DATA_DIR:-$ROOT/data}"

airflow db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1 \
    || { echo "make airflow: airflow db migrate failed, see $AIRFLOW_HOME/migrate.log" >&2; exit 1; }
airflow pools set lake_writer 1 "newsflow: the lake's single writer" >/dev/null

setsid airflow standalone >"$AIRFLOW_HOME/standalone.log" 2>&1 &
pids+=($!)

url="http://127.0.0.1:$AIRFLOW__API__PORT"
for _ in $(seq 120); do
    curl -fsS "$url/api/v2/version" >/dev/null 2>&1 && break
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "airflow standalone exited:" >&2; tail -30 "$AIRFLOW_HOME/standalone.log" >&2; exit 1; }
    sleep 1
done
cat <<INFO

Airflow UI:  $url   (DAGs: news_ingest every ${NEWSFLOW_INGEST_EVERY_MINUTES:-10} min, news_maintenance daily, news_search after each load, news_retag on demand)
login:       admin, password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
database:    ${NEWSFLOW_CATALOG:-$NEWSFLOW_DATA_DIR/newsflow.sqlite}   (query it: .venv/bin/newsflow sql --catalog ... "select ...")
logs:        $AIRFLOW_HOME/standalone.log, task logs under $AIRFLOW_HOME/logs
Ctrl-C stops Airflow and the newsroom.
INFO
wait "${pids[-1]}"
