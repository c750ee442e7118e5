# Shared by up, down and status: where the local stack lives, and how its
# processes are started, found and stopped. Everything the stack writes (binaries
# it installs, data, logs, pid files) is under $STATE; nothing goes to system paths.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPLOY="$ROOT/deploy/local"
STATE=${SEALTRAIL_STATE_DIR:-$ROOT/.local}
# The binaries find their Kafka credentials under it (schemas::kafka).
export SEALTRAIL_STATE_DIR="$STATE"
RUN="$STATE/run"
LOG="$STATE/log"

KAFKA_LIBS="$STATE/kafka/libs"
ANVIL_BIN="$STATE/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
SOLCJS="$STATE/npm/node_modules/solc/solc.js"
ANVIL_NPM_VERSION=1.7.1
SOLC_NPM_VERSION=0.8.37

SERVICES=(kafka clickhouse anvil prometheus)
# Project processes the demo leaves running (sealer serve); down stops them too.
APPS=(trail-api)
PLAYWRIGHT_NPM_VERSION=1.65.1
# Other people's implementations the interop tests compare with.
FASTAVRO_PIP_VERSION=1.13.1
# GS1's reference CBV 2.0 event hash (schemas/tests/event_hash_reference.rs, ingest/tests/epcis.rs).
EPCIS_HASH_PIP_VERSION=1.9.3
AVRO_LIBS="$STATE/avro/libs"

say() { printf '%s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The pid recorded for a service, if that process is still alive.
live_pid() {
  local f="$RUN/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Starts a command detached from this shell, in its own session, with its output
# in the service's log and its pid recorded.
spawn() {
  local name=$1; shift
  mkdir -p "$RUN" "$LOG"
  setsid nohup "$@" >>"$LOG/$name.out" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

# Polls a check until it passes or the deadline is reached.
wait_for() {
  local name=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
    if ! live_pid "$name" >/dev/null; then return 1; fi
    sleep 0.5
  done
}

# Kafka principals of the local stack, each with a password file (mode 0600)
# under $KAFKA_USERS: admin (the only super user: topics, ACLs, test harness),
# sealer, gateway, scanner (simulators and devices producing straight to Kafka),
# clickhouse (ClickHouse's Kafka engine in benches/e2e).
KAFKA_USERS="$STATE/kafka/users"
KAFKA_PRINCIPALS=(admin sealer gateway scanner clickhouse)
KAFKA_ADMIN_CONFIG="$STATE/kafka/admin.properties"

kafka_password() { head -1 "$KAFKA_USERS/$1.password"; }

# ClickHouse users of the local stack besides `default` (see
# deploy/local/clickhouse/users.xml), each with a password file (mode 0600) under
# $CLICKHOUSE_USERS, which the binaries read (--clickhouse-password-file, and
# `sealer serve` finds api's by itself): sealer (`sealer run`), gateway
# (`ingest serve`), api (`sealer serve`), analyst (people; analyst.xml there is a
# clickhouse-client config: `clickhouse-client --config-file ...`).
CLICKHOUSE_USERS="$STATE/clickhouse/users"
CLICKHOUSE_ROLES=(sealer gateway api analyst)

kafka_java() {
  java -Xms64m -XX:TieredStopAtLevel=1 -Xmx1g -XX:+UseG1GC -Dlog4j2.configurationFile="$DEPLOY/kafka/log4j2.xml" \
    -Dkafka.logs.dir="$LOG" -cp "$KAFKA_LIBS/*" "$@"
}

# Readiness probes: each asks the service a real question.
# Debian's kcat (librdkafka 2.0.2) fails SCRAM against this broker: Kafka's own
# tools ask instead, authenticated as admin.
probe_kafka() {
  kafka_java org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server 127.0.0.1:9092 \
    --command-config "$KAFKA_ADMIN_CONFIG" 2>/dev/null | grep -q '^127.0.0.1:9092'
}
probe_clickhouse() { [ "$(curl -sf --max-time 3 'http://127.0.0.1:8123/?query=SELECT%201')" = 1 ]; }
probe_anvil() {
  curl -sf --max-time 3 -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' http://127.0.0.1:8545 | grep -q '"result"'
}
probe_prometheus() { curl -sf --max-time 3 http://127.0.0.1:9090/-/ready >/dev/null; }

address_of() {
  case $1 in
    kafka) echo "127.0.0.1:9092 (controller 127.0.0.1:9093)" ;;
    clickhouse) echo "http://127.0.0.1:8123 (native 127.0.0.1:9000)" ;;
    anvil) echo "http://127.0.0.1:8545" ;;
    prometheus) echo "http://127.0.0.1:9090" ;;
  esac
}

version_of() {
  case $1 in
    kafka) find "$KAFKA_LIBS" -maxdepth 1 -name 'kafka_2.13-*.jar' -printf '%f\n' 2>/dev/null | sed 's/kafka_2.13-\(.*\)\.jar/\1/' ;;
    clickhouse) dpkg-query -W -f '${Version}' clickhouse-server 2>/dev/null ;;
    anvil) "$ANVIL_BIN" --version 2>/dev/null | sed -n 's/^anvil Version: *//p' ;;
    prometheus) prometheus --version 2>&1 | head -1 | awk '{print $3}' ;;
  esac
}
