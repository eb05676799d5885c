#!/usr/bin/env bash
# A Flink 1.19.0 session cluster on this machine, as separate JVMs: one JobManager and N TaskManagers (1 slot each),
# started from Maven-resolved Flink jars (flink-cluster/pom.xml; flink-dist is not needed).
#
#   scripts/local-flink-cluster.sh start   # prints the --flinkMaster to submit to, once every TaskManager registered
#   scripts/local-flink-cluster.sh stop    # stops the JVMs by PID
#   scripts/local-flink-cluster.sh status
#   scripts/local-flink-cluster.sh add-taskmanager   # one more TaskManager (a replacement for a lost one)
#
# Environment: FLINK_CLUSTER_DIR (work folder: conf, logs, pids, tmp; default ./flink-cluster-run), FLINK_REST_PORT
# (8081), FLINK_RPC_PORT (6123), FLINK_BLOB_PORT (6124), FLINK_TASKMANAGERS (2), FLINK_TM_HEAP (task heap, 512m),
# FLINK_RESTART_ATTEMPTS (10: a failed job is restarted up to 10 times, 1 s to 10 s apart, which outlasts the
# 10 s it takes to notice a lost TaskManager).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$(mkdir -p "${FLINK_CLUSTER_DIR:-flink-cluster-run}" && cd "${FLINK_CLUSTER_DIR:-flink-cluster-run}" && pwd)"
REST_PORT="${FLINK_REST_PORT:-8081}"
RPC_PORT="${FLINK_RPC_PORT:-6123}"
BLOB_PORT="${FLINK_BLOB_PORT:-6124}"
TMS="${FLINK_TASKMANAGERS:-2}"
TM_HEAP="${FLINK_TM_HEAP:-512m}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
CLASSPATH_FILE="$REPO/flink-cluster/target/flink-classpath.txt"

# The module accesses the JDK internals that Flink 1.19 needs on Java 17 (what flink-dist's scripts pass).
OPENS=(--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED
  --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED)

write_conf() {
  mkdir -p "$DIR/conf" "$DIR/logs" "$DIR/tmp/web"
  # Without flink-dist's scripts nothing derives the TaskManager's memory; the full spec must be given.
  cat > "$DIR/conf/flink-conf.yaml" <<CONF
jobmanager.rpc.address: localhost
jobmanager.rpc.port: $RPC_PORT
jobmanager.bind-host: localhost
rest.address: localhost
rest.bind-address: localhost
rest.port: $REST_PORT
blob.server.port: $BLOB_PORT
jobmanager.memory.process.size: 1024m
taskmanager.host: localhost
taskmanager.bind-host: localhost
taskmanager.numberOfTaskSlots: 1
parallelism.default: $TMS
taskmanager.cpu.cores: 1
taskmanager.memory.framework.heap.size: 128m
taskmanager.memory.framework.off-heap.size: 128m
taskmanager.memory.task.heap.size: $TM_HEAP
taskmanager.memory.task.off-heap.size: 0m
taskmanager.memory.network.min: 64m
taskmanager.memory.network.max: 64m
taskmanager.memory.managed.size: 128m
taskmanager.memory.jvm-metaspace.size: 256m
taskmanager.memory.jvm-overhead.min: 192m
taskmanager.memory.jvm-overhead.max: 192m
# Beam 2.70's FlinkRunner does not pass --numberOfExecutionRetries to batch jobs: retries are the cluster's policy.
# A lost TaskManager is noticed only when its heartbeats time out; a restart before then is placed on its dead slots
# and fails again. Exponential delay merges the failures that arrive while a restart waits, and the shorter heartbeat
# timeout (Flink's default: 50 s) notices a kill -9 in seconds.
restart-strategy.type: exponential-delay
restart-strategy.exponential-delay.initial-backoff: 1 s
restart-strategy.exponential-delay.max-backoff: 10 s
restart-strategy.exponential-delay.backoff-multiplier: 2.0
restart-strategy.exponential-delay.attempts-before-reset-backoff: ${FLINK_RESTART_ATTEMPTS:-10}
heartbeat.interval: 2000
heartbeat.timeout: 10000
io.tmp.dirs: $DIR/tmp
web.tmpdir: $DIR/tmp/web
web.upload.dir: $DIR/tmp/web
CONF
  cat > "$DIR/conf/log4j.properties" <<'CONF'
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = File
appender.main.fileName = ${sys:log.file}
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
CONF
}

# Whether the process of pid file $1 runs. Not `kill -0`: a killed TaskManager stays a zombie until it is reaped, and
# kill -0 succeeds on a zombie.
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z* ]]
}
running() { [[ -f "$1" ]] && alive "$(cat "$1")"; }

start() {
  if running "$DIR/jm.pid"; then
    echo "a cluster is already running from $DIR (pid $(cat "$DIR/jm.pid")); stop it first" >&2
    exit 1
  fi
  if [[ ! -s "$CLASSPATH_FILE" ]]; then
    echo "resolving the Flink classpath (mvn -f flink-cluster/pom.xml generate-resources)" >&2
    mvn -B -ntp -q -f "$REPO/flink-cluster/pom.xml" generate-resources >&2
  fi
  write_conf
  local cp
  cp="$(cat "$CLASSPATH_FILE")"
  local log4j=(-Dlog4j.configurationFile="$DIR/conf/log4j.properties")
  nohup "$JAVA" -Xms512m -Xmx512m -XX:MaxMetaspaceSize=256m "${OPENS[@]}" -Dlog.file="$DIR/logs/jobmanager.log" \
    "${log4j[@]}" -cp "$cp" org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint \
    --configDir "$DIR/conf" > "$DIR/logs/jobmanager.out" 2>&1 &
  echo $! > "$DIR/jm.pid"
  for i in $(seq 1 "$TMS"); do
    start_taskmanager "$i" "$cp"
  done
  wait_for_taskmanagers "$TMS"
  echo "Flink cluster ready ($TMS TaskManagers, 1 slot each): --runner=FlinkRunner --flinkMaster=localhost:$REST_PORT"
}

# Starts TaskManager number $1 with classpath $2.
start_taskmanager() {
  local log4j=(-Dlog4j.configurationFile="$DIR/conf/log4j.properties")
  # Heap = framework + task heap; direct = framework + task off-heap + network (what Flink's scripts derive).
  local heap=$(( 128 + ${TM_HEAP%m} ))m
  nohup "$JAVA" -Xms$heap -Xmx$heap -XX:MaxDirectMemorySize=320m -XX:MaxMetaspaceSize=256m "${OPENS[@]}" \
    -Dlog.file="$DIR/logs/taskmanager-$1.log" "${log4j[@]}" -cp "$2" \
    org.apache.flink.runtime.taskexecutor.TaskManagerRunner --configDir "$DIR/conf" \
    -Dtaskmanager.resource-id="tm$1" > "$DIR/logs/taskmanager-$1.out" 2>&1 &
  echo $! > "$DIR/tm$1.pid"
}

# Waits until the JobManager counts $1 registered TaskManagers; stops the cluster if a process exits meanwhile.
wait_for_taskmanagers() {
  local want=$1
  local deadline=$(( SECONDS + ${FLINK_START_TIMEOUT:-180} ))
  until curl -sf "http://localhost:$REST_PORT/overview" 2>/dev/null | grep -q "\"taskmanagers\":$want[,}]"; do
    if (( SECONDS > deadline )); then
      echo "the cluster did not come up with $want TaskManagers within ${FLINK_START_TIMEOUT:-180} s; logs in $DIR/logs" >&2
      stop
      exit 1
    fi
    for pid in "$DIR"/*.pid; do
      if ! running "$pid"; then
        echo "$(basename "$pid" .pid) exited during start-up; logs in $DIR/logs:" >&2
        tail -n 5 "$DIR/logs/"*.out >&2 || true
        stop
        exit 1
      fi
    done
    sleep 0.5
  done
}

# One more TaskManager (a replacement for a lost one); waits until the JobManager lists it by its resource id. Only the
# JobManager and the new TaskManager are watched: a TaskManager killed just before (the reason to add one) may still
# be exiting, and its end is not a failed start (taking it for one once stopped the whole cluster).
add_taskmanager() {
  running "$DIR/jm.pid" || { echo "no cluster runs from $DIR" >&2; exit 1; }
  # numbered after every TaskManager this folder ever started (their logs stay), so that no resource id is reused
  local n=1
  for f in "$DIR"/logs/taskmanager-*.out; do
    [[ -f "$f" ]] || continue
    local i=${f##*/taskmanager-}; i=${i%.out}
    (( i >= n )) && n=$(( i + 1 ))
  done
  for f in "$DIR"/tm*.pid; do
    if [[ -f "$f" ]] && ! running "$f"; then
      echo "$(basename "$f" .pid) is gone (pid $(cat "$f"))"
      rm -f "$f"
    fi
  done
  start_taskmanager "$n" "$(cat "$CLASSPATH_FILE")"
  local deadline=$(( SECONDS + ${FLINK_START_TIMEOUT:-180} ))
  until curl -sf "http://localhost:$REST_PORT/taskmanagers" 2>/dev/null | grep -q "\"id\":\"tm$n\""; do
    if (( SECONDS > deadline )) || ! running "$DIR/tm$n.pid" || ! running "$DIR/jm.pid"; then
      echo "TaskManager $n did not register within ${FLINK_START_TIMEOUT:-180} s or a process exited; logs in $DIR/logs" >&2
      tail -n 5 "$DIR/logs/taskmanager-$n.out" >&2 || true
      running "$DIR/tm$n.pid" && kill -9 "$(cat "$DIR/tm$n.pid")" 2>/dev/null
      rm -f "$DIR/tm$n.pid"
      exit 1
    fi
    sleep 0.5
  done
  echo "TaskManager $n ready"
}

stop() {
  local pids=()
  for f in "$DIR"/*.pid; do
    [[ -f "$f" ]] || continue
    if running "$f"; then pids+=("$(cat "$f")"); fi
    rm -f "$f"
  done
  if (( ${#pids[@]} )); then
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 60); do
      local alive=0
      # until reaped, not just dead: whoever checks the pids next must find them gone
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      (( alive )) || break
      sleep 0.5
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
    echo "stopped ${#pids[@]} Flink process(es)"
  fi
}

status() {
  for f in "$DIR"/*.pid; do
    [[ -f "$f" ]] || continue
    if running "$f"; then echo "$(basename "$f" .pid): running, pid $(cat "$f")"; else echo "$(basename "$f" .pid): not running"; fi
  done
  curl -sf "http://localhost:$REST_PORT/overview" && echo || echo "no REST answer on localhost:$REST_PORT"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  add-taskmanager) add_taskmanager ;;
  *) echo "usage: $0 start|stop|status|add-taskmanager" >&2; exit 2 ;;
esac
