#!/usr/bin/env bash
# A Flink 1.19.0 session cluster on this machine, as separate JVMs: one JobManager and N TaskManagers (1 slot each),
# started from Maven-resolved Flink jars (flink-cluster/pom.xml; flink-dist is not needed).
#
#   scripts/local-flink-cluster.sh start   # prints the --flinkMaster to submit to, once every TaskManager registered
#   scripts/local-flink-cluster.sh stop    # stops the JVMs by PID
#   scripts/local-flink-cluster.sh status
#
# Environment: FLINK_CLUSTER_DIR (work folder: conf, logs, pids, tmp; default ./flink-cluster-run), FLINK_REST_PORT
# (8081), FLINK_RPC_PORT (6123), FLINK_BLOB_PORT (6124), FLINK_TASKMANAGERS (2), FLINK_TM_HEAP (task heap, 512m),
# FLINK_RESTART_ATTEMPTS (3: a failed job is restarted up to 3 times, 1 s apart).
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
restart-strategy.type: fixed-delay
restart-strategy.fixed-delay.attempts: ${FLINK_RESTART_ATTEMPTS:-3}
restart-strategy.fixed-delay.delay: 1 s
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

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

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
  # Heap = framework + task heap; direct = framework + task off-heap + network (what Flink's scripts derive).
  local heap=$(( 128 + ${TM_HEAP%m} ))m
  for i in $(seq 1 "$TMS"); do
    nohup "$JAVA" -Xms$heap -Xmx$heap -XX:MaxDirectMemorySize=320m -XX:MaxMetaspaceSize=256m "${OPENS[@]}" \
      -Dlog.file="$DIR/logs/taskmanager-$i.log" "${log4j[@]}" -cp "$cp" \
      org.apache.flink.runtime.taskexecutor.TaskManagerRunner --configDir "$DIR/conf" \
      > "$DIR/logs/taskmanager-$i.out" 2>&1 &
    echo $! > "$DIR/tm$i.pid"
  done
  local deadline=$(( SECONDS + ${FLINK_START_TIMEOUT:-180} ))
  until curl -sf "http://localhost:$REST_PORT/overview" 2>/dev/null | grep -q "\"taskmanagers\":$TMS[,}]"; do
    if (( SECONDS > deadline )); then
      echo "the cluster did not come up with $TMS TaskManagers within ${FLINK_START_TIMEOUT:-180} s; logs in $DIR/logs" >&2
      stop
      exit 1
    fi
    for pid in "$DIR"/*.pid; do
      if ! running "$pid"; then
        echo "$(basename "$pid" .pid) exited during start-up; logs in $DIR/logs:" >&2
        tail -5 "$DIR/logs/"*.out >&2 || true
        stop
        exit 1
      fi
    done
    sleep 0.5
  done
  echo "Flink cluster ready ($TMS TaskManagers, 1 slot each): --runner=FlinkRunner --flinkMaster=localhost:$REST_PORT"
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
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
