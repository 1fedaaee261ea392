#!/bin/bash
# restorable wal-archiver: continuous WAL archiving for PITR, one long-running process per host.
#
# For each PITR cluster:
#   pg_receivewal -S restorable_<cluster> -D <stateDir>/wal/<cluster>   (a replication slot, so
#       the server keeps the WAL the archiver has not received yet, bounded by
#       max_slot_wal_keep_size = pitr.serverWalLimit, which this sets with ALTER SYSTEM + reload)
#   every completed segment: zstd | [age] > temp, sha256, one signed PUT (the store checks the
#       payload's sha256; the object carries it as x-amz-meta-sha256) to
#       <host>/wal/<cluster>/<segment>.zst[.age], never over an existing key, then removed locally
#   a quiet server: when the current segment has held unarchived WAL for a third of the shipping
#       target (min(RPO, 60 s)), pg_switch_wal() completes it, so every commit is off-site within
#       the target even when nothing else is written
#   an alarm: WAL older than the RPO that is not off-site (receiver down, store unreachable, spool
#       disk full, ...) logs the oldest missing segment and pings /fail, again every 5 minutes
#       while it lasts; a server the archiver has not been able to query for longer than the RPO
#       (a wrong password, pg_hba.conf, the network, a stopped server: the receiver cannot stream
#       either, so what the server writes meanwhile is not archived) is reported the same way; a
#       slot the server had to invalidate (the limit was hit) is a gap, reported at once and
#       then the same way until a base backup started after it, its time counted in the age;
#       archiving resumes by itself from the server's current WAL (wa_resume_after_gap).
# The receiver is restarted when it exits (database restart, network); a receiver left behind by
# a killed archiver is stopped first. Cron starts this every minute as a keepalive: a running
# archiver holds its lock and the new one exits at once, quietly (exit 0).
#
# Where pg_receivewal runs: `via: local` on the host (the host's client tools, -h/-p). `via:
# compose` and `via: container`: in a sidecar container from the database container's own image
# (same client version, nothing installed on the host, no change to the compose file) that shares
# the database container's network namespace and connects to 127.0.0.1 there; it writes into the
# spool on the host through a bind mount, runs with no capabilities on a read-only root, carries
# the label io.restorable.wal-spool=<spool>, and reads the password (when one is configured) from
# its stdin, so it is in no argv and not in `docker inspect`. Queries (the quiet-server switch,
# the slot) go through `docker exec` into the database container, like pg_dump.
#
# Usage: wal-archiver      (no arguments; runs until stopped with TERM)
# Exit codes: 0 stopped by TERM/INT or another archiver runs, 1 a stage failed, 2 usage/config/credentials error.
# shellcheck disable=SC2154  # RESTORABLE_* settings come from the sourced config and credentials
# shellcheck disable=SC2317  # functions run indirectly, through restorable_try
set -euo pipefail

RESTORABLE_SELF_DIR=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd -P)
# shellcheck source=lib.sh
. "$RESTORABLE_SELF_DIR/lib.sh"
# shellcheck source=lib-pitr.sh
. "$RESTORABLE_SELF_DIR/lib-pitr.sh"

restorable_no_args "wal-archiver" "${BASH_SOURCE[0]}" "$@"

RESTORABLE_PITR_SHIP_SECONDS=60 RESTORABLE_PITR_SERVER_WAL_LIMIT=4GB
restorable_init wal-archiver

# The keepalive: one archiver per host. A second one exits quietly (no ping, no failure line).
RESTORABLE_STAGE=lock
exec {WA_LOCK_FD}>>"$RESTORABLE_STATE_DIR/wal-archiver.lock"
if ! flock -n "$WA_LOCK_FD"; then
  RESTORABLE__REPORTED=1
  exit 0
fi

wa_stop() {
  trap - TERM INT
  local c pid
  for pid in "${WA_PID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do wa_stop_receivers "$c"; done
  restorable_log "stopped by signal $1"
  RESTORABLE__REPORTED=1
  exit 0
}
trap 'wa_stop TERM' TERM
trap 'wa_stop INT' INT

printf '%s\n' "$$" >"$RESTORABLE_STATE_DIR/wal-archiver.pid"
restorable_ping start
restorable_load_credentials

if ((${#RESTORABLE_PITR_CLUSTER[@]} == 0)); then
  restorable_fail config "PITR is not configured for host $RESTORABLE_HOST (no pitr section): no WAL to archive" 2
fi

SHIP=$RESTORABLE_PITR_SHIP_SECONDS
if ((RESTORABLE_RPO_SECONDS < SHIP)); then SHIP=$RESTORABLE_RPO_SECONDS; fi
TICK=$((SHIP / 6))
if ((TICK < 2)); then TICK=2; fi
SWITCH_AFTER=$((SHIP / 3))
REPEAT_ALARM=300
WAL_NAME='^([0-9A-F]{24}|[0-9A-F]{8}\.history)$'

# wa_mono: WA_MONO = seconds on the monotonic clock (/proc/uptime): every interval the archiver
# measures (how long WAL has waited, when to switch, when to repeat the alarm) uses it, so a jump
# of the wall clock (NTP after a reboot, a wrong RTC, a manual change) cannot hide an alarm by
# making ages negative, nor fake one. The wall clock dates the status file and the log, and
# gives a segment that predates this archiver its wait so far (wa_waiting).
wa_mono() {
  local up
  read -r up _ </proc/uptime
  WA_MONO=${up%.*}
}

# "0/5000028" -> bytes
wa_lsn() {
  local hi=${1%/*} lo=${1#*/}
  printf '%d' "$((16#$hi * 4294967296 + 16#$lo))"
}

wa_limit_mb() {
  local n=${1%[MGTmgt][Bb]} u=${1: -2}
  case ${u^^} in
    MB) echo "$n" ;;
    GB) echo "$((n * 1024))" ;;
    TB) echo "$((n * 1024 * 1024))" ;;
  esac
}

wa_sql() {
  local i=$1
  shift
  RESTORABLE_PG_TIMEOUT=30 restorable_pg "$i" psql -X -w -A -t -q -F '|' -v ON_ERROR_STOP=1 -d "${RESTORABLE_PG_DATABASE[i]}" -c "$1"
}

declare -A WA_SWITCH_XID=() WA_PID=() WA_SEGSIZE=() WA_SHIPPED_END=() WA_DIRTY_SINCE=() WA_UNSHIPPED_SINCE=() WA_UNSHIPPED_LSN=()
declare -A WA_ALARM_AT=() WA_ALARM=() WA_SHIP_ERROR=() WA_CONNECT_ERROR=()
declare -A WA_AGE=() WA_AGE_AT=() WA_UNMEASURED_SINCE=() WA_UNMEASURED_WHY=()
declare -A WA_SEEN=() WA_LOOKED=() WA_LOG_OFFSET=() WA_EXIT_WHY=() WA_EXIT_AT=() WA_EXIT_REPEATS=() WA_HALF_SAID=()
# A gap: the server dropped WAL the archive never received (WA_GAP: the first segment missing,
# or "" when not known), since when the archive cannot restore to now (WA_GAP_SINCE, monotonic),
# when the slot was made again (WA_GAP_AT, UTC stamp: a base backup started after it covers the
# gap), and when the bucket was last looked at for one (WA_GAP_LOOKED, monotonic).
declare -A WA_GAP=() WA_GAP_SINCE=() WA_GAP_AT=() WA_GAP_LOOKED=()

wa_spool() { restorable_pitr_spool "${RESTORABLE_PITR_CLUSTER[$1]}"; }

# wa_in_docker C: 0 when cluster C's receiver runs as a sidecar container (compose/container).
wa_in_docker() { [[ ${RESTORABLE_PG_VIA[${RESTORABLE_PITR_SOURCE[$1]}]} != local ]]; }

# wa_container C: "ID IMAGE" of the database container, from one `docker inspect` (compose: the
# service's container, resolved again each time: `up` may have recreated it). The id is also kept
# in RESTORABLE_PG_CID for restorable_pg's queries. On stderr why not.
wa_container() {
  local i=${RESTORABLE_PITR_SOURCE[$1]} ref=${RESTORABLE_PG_CONTAINER[${RESTORABLE_PITR_SOURCE[$1]}]:-} what out
  what="container $ref"
  if [[ ${RESTORABLE_PG_VIA[i]} == compose ]]; then
    RESTORABLE_PG_CID[i]=
    what="compose service ${RESTORABLE_PG_SERVICE[i]} in ${RESTORABLE_PG_PROJECT[i]}"
    ref=$(restorable_compose_container "${RESTORABLE_PG_PROJECT[i]}" "${RESTORABLE_PG_SERVICE[i]}" 2>"$RESTORABLE_RUN_DIR/cid.err") || {
      echo "$what: $(restorable_summarize_err "$RESTORABLE_RUN_DIR/cid.err" "not found")" >&2
      return 1
    }
  fi
  if ! out=$(docker inspect --format '{{.Id}} {{.Image}}' "$ref" 2>"$RESTORABLE_RUN_DIR/cid.err") || [[ $out != *" "?* ]]; then
    echo "$what: $(restorable_summarize_err "$RESTORABLE_RUN_DIR/cid.err" "not found")" >&2
    return 1
  fi
  if [[ ${RESTORABLE_PG_VIA[i]} == compose ]]; then RESTORABLE_PG_CID[i]=${out%% *}; fi
  printf '%s\n' "$out"
}

# wa_stop_receivers C [WHY]: stop every receiver of cluster C: pg_receivewal processes writing into
# its spool and, for a sidecar, its containers (a killed archiver leaves them running). With WHY,
# each one stopped is logged ("... a previous archiver left running").
wa_stop_receivers() {
  local c=$1 why=${2:-} spool pid id
  spool=$(wa_spool "$c")
  for pid in $(wa_receiver_pids "$spool"); do
    [[ -z $why ]] || restorable_log "cluster ${RESTORABLE_PITR_CLUSTER[c]}: stopping the receiver (pid $pid) $why"
    wa_kill "$pid"
  done
  if wa_in_docker "$c"; then
    for id in $(restorable_pitr_sidecars "${RESTORABLE_PITR_CLUSTER[c]}"); do
      [[ -z $why ]] || restorable_log "cluster ${RESTORABLE_PITR_CLUSTER[c]}: removing the receiver container ${id:0:12} $why"
      docker rm -f "$id" >/dev/null 2>&1 || true
    done
  fi
}

# wa_receiver_pids SPOOL: pids of pg_receivewal processes writing into SPOOL (found by their
# command line: the background job's own pid is a subshell around the receiver).
wa_receiver_pids() {
  local p args
  # Only the pg_receivewal processes (pgrep), not a read of every process's command line.
  for p in $(pgrep -x pg_receivewal 2>/dev/null || true); do
    # 2>/dev/null first: a process that exits between the listing and the read is not an error.
    args=$(tr '\0' '\n' 2>/dev/null <"/proc/$p/cmdline") || continue
    if grep -qxF -- "$1" <<<"$args"; then printf '%s\n' "$p"; fi
  done
}

# wa_kill PID: TERM, up to 5 s, then KILL.
wa_kill() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -KILL "$1" 2>/dev/null || true
}

# wa_create_slot C: cluster C's physical slot, made when missing, its WAL reserved from that moment
# (pg_create_physical_replication_slot(NAME, true); REPLICATION is enough). pg_receivewal
# --create-slot (what earlier versions used) reserves nothing until a receiver first streams: WAL
# written between the slot's creation and the receiver's first connection was never archived, and
# the archive could not show it as a gap (it came before its first segment). Such a slot, one that
# has never reserved anything and that no receiver uses, is made again, reserving.
wa_create_slot() {
  local i=${RESTORABLE_PITR_SOURCE[$1]} slot=${RESTORABLE_PITR_SLOT[$1]}
  wa_sql "$i" "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$slot' AND restart_lsn IS NULL AND NOT active" >/dev/null &&
    wa_sql "$i" "SELECT pg_create_physical_replication_slot('$slot', true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$slot')" >/dev/null
}

# wa_streaming C: 0 once cluster C's receiver streams from its slot (the slot is active).
wa_streaming() {
  [[ $(wa_sql "${RESTORABLE_PITR_SOURCE[$1]}" "SELECT active FROM pg_replication_slots WHERE slot_name = '${RESTORABLE_PITR_SLOT[$1]}'" 2>/dev/null) == t ]]
}

# wa_setup C: spool dir, the server's WAL bound, the slot; stops a receiver a killed archiver left.
wa_setup() {
  local c=$1 i=${RESTORABLE_PITR_SOURCE[$1]} name=${RESTORABLE_PITR_CLUSTER[$1]} slot=${RESTORABLE_PITR_SLOT[$1]}
  local spool want have
  spool=$(wa_spool "$c")
  mkdir -p -- "$RESTORABLE_STATE_DIR/wal"
  if [[ ! -d $spool ]]; then mkdir -m 0700 -- "$spool"; fi
  if wa_in_docker "$c"; then
    if ! restorable_try setup wa_container "$c" >/dev/null; then
      restorable_fail setup "cluster $name: cannot find the database container: $RESTORABLE_ERROR_REASON"
    fi
  fi
  # A receiver left running by a killed archiver holds the slot: stop it first.
  wa_stop_receivers "$c" "a previous archiver left running"
  if ! restorable_try setup wa_sql "$i" "$RESTORABLE_PITR_SEGSIZE_SQL" >"$RESTORABLE_RUN_DIR/segsize"; then
    restorable_fail setup "cluster $name: cannot query the server: $RESTORABLE_ERROR_REASON"
  fi
  WA_SEGSIZE[$c]=$(tr -dc 0-9 <"$RESTORABLE_RUN_DIR/segsize")
  # The bound on what the slot can make the server keep (never a full database disk).
  want=$(wa_limit_mb "$RESTORABLE_PITR_SERVER_WAL_LIMIT")
  restorable_try setup wa_sql "$i" "SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size'" >"$RESTORABLE_RUN_DIR/keep" || true
  have=$(tr -dc 0-9- <"$RESTORABLE_RUN_DIR/keep" 2>/dev/null || true)
  if [[ $have != "$want" ]]; then
    restorable_log "cluster $name: setting max_slot_wal_keep_size = ${want}MB (was ${have:-unknown}) with ALTER SYSTEM and a reload"
    if ! restorable_try setup wa_sql "$i" "ALTER SYSTEM SET max_slot_wal_keep_size = '${want}MB'" >/dev/null ||
      ! restorable_try setup wa_sql "$i" "SELECT pg_reload_conf()" >/dev/null; then
      restorable_fail setup "cluster $name: cannot bound the WAL the slot keeps on the server (max_slot_wal_keep_size needs a superuser to set it once): $RESTORABLE_ERROR_REASON"
    fi
  fi
  if ! restorable_try setup wa_create_slot "$c"; then
    restorable_fail setup "cluster $name: cannot create the replication slot $slot (the user needs REPLICATION and a replication line in pg_hba.conf): $RESTORABLE_ERROR_REASON"
  fi
  wa_clear_half_made "$c"
  WA_SHIPPED_END[$c]=0
  WA_DIRTY_SINCE[$c]=
  WA_UNSHIPPED_SINCE[$c]=
  WA_UNMEASURED_SINCE[$c]=
  WA_ALARM[$c]=
  WA_ALARM_AT[$c]=0
}

# The sidecar's command (sh -c, arguments $1..$5: slot user database port password-follows).
# shellcheck disable=SC2016  # expanded by the container's sh
WA_SIDECAR_SH='if [ "$5" = 1 ]; then IFS= read -r PGPASSWORD; export PGPASSWORD; fi
exec pg_receivewal -w -n -D /spool -S "$1" -h 127.0.0.1 -p "$4" -U "$2" -d "dbname=$3"'

# wa_bg_pids: the running receivers are the run's background jobs (lib.sh stops them on exit).
wa_bg_pids() {
  local p
  RESTORABLE_BG_PIDS=()
  for p in "${WA_PID[@]}"; do [[ -z $p ]] || RESTORABLE_BG_PIDS+=("$p"); done
}

wa_start_receiver() {
  local c=$1 i=${RESTORABLE_PITR_SOURCE[$1]} spool
  spool=$(wa_spool "$c")
  if wa_in_docker "$c"; then
    wa_start_sidecar "$c" && return 0
    # Not started (the database container is gone or stopped): retried next round.
    WA_PID[$c]=
    return 0
  fi
  # Not holding the lock: a receiver orphaned by a killed archiver must not keep the next one out.
  restorable_pg "$i" pg_receivewal -w -n -D "$spool" -S "${RESTORABLE_PITR_SLOT[c]}" -d "dbname=${RESTORABLE_PG_DATABASE[i]}" \
    </dev/null >>"$spool.receiver.log" 2>&1 {WA_LOCK_FD}>&- &
  WA_PID[$c]=$!
  wa_bg_pids
}

# wa_start_sidecar C: pg_receivewal in a container from the database container's image, in its
# network namespace, spooling into the host's spool dir. Its `docker run` client is the
# background job (WA_PID): it exits with the receiver, and a TERM to it reaches the receiver.
wa_start_sidecar() {
  local c=$1 i=${RESTORABLE_PITR_SOURCE[$1]} name=${RESTORABLE_PITR_CLUSTER[$1]} spool cid image port pw=${RESTORABLE_PG_PASSWORD[${RESTORABLE_PITR_SOURCE[$1]}]:-}
  spool=$(wa_spool "$c")
  wa_stop_receivers "$c"
  if ! restorable_try connect wa_container "$c" >"$RESTORABLE_RUN_DIR/cid"; then
    wa_log_once "$c" "cannot find the database container (will retry): $RESTORABLE_ERROR_REASON"
    return 1
  fi
  read -r cid image <"$RESTORABLE_RUN_DIR/cid"
  # The port the server listens on inside its container (PGPORT may move it from 5432).
  if ! restorable_try connect wa_sql "$i" "SHOW port" >"$RESTORABLE_RUN_DIR/port" || ! port=$(tr -dc 0-9 <"$RESTORABLE_RUN_DIR/port") || [[ -z $port ]]; then
    wa_log_once "$c" "cannot query the server in container ${cid:0:12} (will retry): ${RESTORABLE_ERROR_REASON:-no port}"
    return 1
  fi
  WA_CONNECT_ERROR[$c]=
  printf '%s\n' "$pw" | docker run --rm -i --label "io.restorable.wal-spool=$spool" --label "io.restorable.host=$RESTORABLE_HOST" \
    --network "container:$cid" --user 0:0 --cap-drop ALL --security-opt no-new-privileges --read-only \
    --log-driver none -v "$spool:/spool" --entrypoint sh "$image" -c "$WA_SIDECAR_SH" receiver \
    "${RESTORABLE_PITR_SLOT[c]}" "${RESTORABLE_PG_USER[i]}" "${RESTORABLE_PG_DATABASE[i]}" "$port" "$([[ -n $pw ]] && echo 1 || echo 0)" \
    >>"$spool.receiver.log" 2>&1 {WA_LOCK_FD}>&- &
  WA_PID[$c]=$!
  wa_bg_pids
  restorable_log "cluster $name: receiver started in a container from the database's image ${image:7:12}, in the network of ${cid:0:12}, port $port"
}

# wa_log_once C MESSAGE: log a connection problem once until it clears.
wa_log_once() {
  if [[ ${WA_CONNECT_ERROR[$1]:-} != 1 ]]; then
    restorable_log "cluster ${RESTORABLE_PITR_CLUSTER[$1]}: $2"
    WA_CONNECT_ERROR[$1]=1
  fi
}

# wa_check_receiver C: restart the receiver when it has exited, saying why.
# The same exit reason is logged again only after REPEAT_ALARM seconds (a receiver that fails at
# once is restarted every round: the log must not grow by a line every few seconds for days).
wa_check_receiver() {
  local c=$1 pid=${WA_PID[$1]:-} code=0 state spool why now
  wa_mono
  now=$WA_MONO
  if [[ -n $pid ]]; then
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
    if [[ $state != Z && $state != X ]]; then return 0; fi
    wait "$pid" 2>/dev/null || code=$?
    spool=$(wa_spool "$c")
    # What this receiver said (the log holds earlier runs too).
    tail -c "+$((${WA_LOG_OFFSET[$c]:-0} + 1))" "$spool.receiver.log" >"$RESTORABLE_RUN_DIR/receiver.$c.err" 2>/dev/null || true
    why="$(restorable_status_text pg_receivewal "$code"): $(restorable_summarize_err "$RESTORABLE_RUN_DIR/receiver.$c.err" "no output")"
    if [[ $why != "${WA_EXIT_WHY[$c]:-}" ]] || ((now - ${WA_EXIT_AT[$c]:-0} >= REPEAT_ALARM)); then
      restorable_log "cluster ${RESTORABLE_PITR_CLUSTER[c]}: $why; restarting it${WA_EXIT_REPEATS[$c]:+ (the same $((WA_EXIT_REPEATS[$c])) more time(s) before)}"
      WA_EXIT_WHY[$c]=$why WA_EXIT_AT[$c]=$now WA_EXIT_REPEATS[$c]=
    else
      WA_EXIT_REPEATS[$c]=$((${WA_EXIT_REPEATS[$c]:-0} + 1))
    fi
    tail -n 200 "$spool.receiver.log" >"$spool.receiver.log.tmp" 2>/dev/null && mv -f -- "$spool.receiver.log.tmp" "$spool.receiver.log"
    wa_clear_half_made "$c"
    # The server no longer has the WAL the receiver resumes from (pg_receivewal starts after the
    # spool's newest file): it would fail the same way forever.
    local removed
    removed=$(sed -n 's/.*requested WAL segment \([0-9A-F]\{24\}\) has already been removed.*/\1/p' "$RESTORABLE_RUN_DIR/receiver.$c.err" | tail -n 1)
    if [[ -n $removed ]] && ! wa_resume_after_gap "$c" "$removed"; then return 0; fi
  fi
  WA_LOG_OFFSET[$c]=$(stat -c %s -- "$(wa_spool "$c").receiver.log" 2>/dev/null || echo 0)
  wa_start_receiver "$c"
}

# wa_gap C SEG NOW: the server dropped WAL of cluster C that the archive never received, from
# segment SEG on ("" when not known yet). From then on the archive cannot restore to now: the
# WAL after the gap needs a base backup taken after it. Counted from when that WAL stopped
# reaching the archive (the unshipped clock, else NOW); the slot is (re)made by the caller, after
# which WA_GAP_AT is set (wa_gap_slot_made).
wa_gap() {
  local c=$1 seg=$2 now=$3
  if [[ -z ${WA_GAP[$c]+set} ]]; then
    WA_GAP_SINCE[$c]=${WA_UNSHIPPED_SINCE[$c]:-$now}
    WA_GAP_LOOKED[$c]=-1
  fi
  # The segment named for the first time: the alarm says it at once (a new fail ping), not
  # only at its next repeat.
  if [[ -n $seg && ${WA_GAP[$c]:-} != "$seg" ]]; then
    WA_GAP[$c]=$seg
    if [[ -n ${WA_ALARM_AT[$c]:-} ]]; then WA_ALARM_AT[$c]=$((now - REPEAT_ALARM)); fi
  elif [[ -z ${WA_GAP[$c]+set} ]]; then
    WA_GAP[$c]=""
  fi
}
wa_gap_slot_made() { printf -v "WA_GAP_AT[$1]" '%(%Y%m%dT%H%M%SZ)T' -1; }

# wa_gap_covered C NOW: 0 once a base backup of cluster C started after the slot was made again
# (a manifest in any tier with a later stamp): from it on every time is restorable again. Looks
# at the bucket at most every 30 s. Sets WA_GAP_BASE to the stamp.
WA_GAP_BASE=""
wa_gap_covered() {
  local c=$1 now=$2 name=${RESTORABLE_PITR_CLUSTER[$1]} tier k stamp
  [[ -n ${WA_GAP_AT[$c]:-} ]] || return 1
  if ((WA_GAP_LOOKED[$c] >= 0 && now - WA_GAP_LOOKED[$c] < 30)); then return 1; fi
  WA_GAP_LOOKED[$c]=$now
  for tier in daily weekly monthly; do
    while IFS= read -r k; do
      stamp=${k##*/}
      stamp=${stamp%.manifest.json}
      if [[ $stamp =~ ^[0-9]{8}T[0-9]{6}Z$ && $stamp > ${WA_GAP_AT[$c]} ]]; then WA_GAP_BASE=$stamp; return 0; fi
    done < <(restorable_s3_list "${RESTORABLE_PREFIX}$tier/base/$name/" 2>/dev/null | grep '\.manifest\.json$' || true)
  done
  return 1
}

# wa_resume_after_gap C SEG: cluster C's receiver cannot resume: the server has removed segment
# SEG, where its spool ends (the slot was invalidated at max_slot_wal_keep_size, or dropped). What
# the spool holds before the gap goes off-site first: its completed segments, then the part of
# SEG the receiver had, under SEG's name (the only copy of that WAL: the server will never stream
# SEG again, and a recovery replays it to its last record, then finds the gap). Then the slot is
# made again, reserving from now (the old one's restart point is in the gap: a receiver's
# feedback moves a physical slot back), and the receiver starts from it on an empty spool.
# Returns 1 (the receiver stays down; retried next round) while an upload fails.
wa_resume_after_gap() {
  local c=$1 seg=$2 name=${RESTORABLE_PITR_CLUSTER[$1]} i=${RESTORABLE_PITR_SOURCE[$1]} slot=${RESTORABLE_PITR_SLOT[$1]} spool
  spool=$(wa_spool "$c")
  wa_mono
  wa_gap "$c" "$seg" "$WA_MONO"
  wa_stop_receivers "$c"
  wa_ship "$c" || return 1
  if [[ -f $spool/$seg.partial ]]; then
    wa_ship_file "$c" "$spool/$seg.partial" "$seg" "the part of $seg the receiver had" || return 1
    rm -f -- "$spool/$seg.partial"
    restorable_log "cluster $name: archived the part of $seg the receiver had received before the server dropped the rest"
  fi
  if ! restorable_try connect wa_sql "$i" "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$slot' AND NOT active" >/dev/null ||
    ! restorable_try connect wa_create_slot "$c"; then
    restorable_log "cluster $name: cannot make the slot $slot again (will retry): $RESTORABLE_ERROR_REASON"
    return 1
  fi
  wa_gap_slot_made "$c"
  restorable_log "cluster $name: archiving resumes from the server's current WAL (slot $slot made again); the archive has a gap from $seg"
}

# wa_clear_half_made C: a segment file the receiver could not pad to its full size (the spool's
# disk was full) holds only zeros, and pg_receivewal refuses to start next to it ("has N bytes,
# should be 0 or <the segment size>") even once there is space again: remove it; the slot still holds that
# WAL on the server and the receiver streams it again. One holding anything but zeros is left
# alone and said (the receiver then keeps failing and the alarm keeps naming the segment).
wa_clear_half_made() {
  local c=$1 spool f size
  spool=$(wa_spool "$c")
  for f in "$spool"/*.partial; do
    [[ -f $f ]] || continue
    size=$(stat -c %s -- "$f" 2>/dev/null) || continue
    if ((size == 0 || size == WA_SEGSIZE[$c])); then continue; fi
    if cmp -s -n "$size" -- "$f" /dev/zero; then
      rm -f -- "$f"
      restorable_log "cluster ${RESTORABLE_PITR_CLUSTER[c]}: removed ${f##*/}, a segment file the receiver could not finish making ($size bytes of zeros: the spool's disk was full); the slot keeps that WAL on the server"
    elif [[ ${WA_HALF_SAID[$c]:-} != "$f" ]]; then
      restorable_log "cluster ${RESTORABLE_PITR_CLUSTER[c]}: ${f##*/} has $size bytes, not a whole segment, and holds WAL: pg_receivewal will not resume next to it; move it out of $spool by hand"
      WA_HALF_SAID[$c]=$f
    fi
  done
}

# wa_exists KEY: 0 when the object exists, 1 when it does not, 2 on any error. A listing with the
# key as prefix, not a HEAD: a host key may list only its own prefix, and for such a key S3 answers
# a HEAD of a missing object with 403, not 404.
wa_exists() {
  local keys
  keys=$(restorable_s3_list "$1") || return 2
  if grep -qxF -- "$1" <<<"$keys"; then return 0; fi
  return 1
}

# wa_upload FILE KEY: compress (and encrypt) FILE, then one signed PUT of the result, unless KEY
# exists. Unencrypted, nothing is written to disk (a full spool disk must not block the uploads
# that would free it): zstd runs twice, once for the payload's sha256 (the signature needs it
# first) and once into the PUT; its output is the same for the same input and level. age output
# is not repeatable, so an encrypted segment goes through a temp file next to it.
wa_upload() {
  local file=$1 key=$2 tmp='' sha rc=0 out
  local -a zstd_args=(-q -c "-$RESTORABLE_ZSTD_LEVEL" -T1)
  if ((${#RESTORABLE_AGE_RECIPIENTS[@]} > 0)); then
    local -a age_args=() r
    for r in "${RESTORABLE_AGE_RECIPIENTS[@]}"; do age_args+=(-r "$r"); done
    tmp="$(dirname -- "$file")/.upload.$(basename -- "$file")"
    zstd "${zstd_args[@]}" -- "$file" | age "${age_args[@]}" >"$tmp" || rc=$?
    if ((rc != 0)); then rm -f -- "$tmp"; echo "cannot compress and encrypt $file into $tmp (disk full?)" >&2; return 1; fi
    sha=$(sha256sum -- "$tmp" | cut -d' ' -f1)
  else
    sha=$(zstd "${zstd_args[@]}" -- "$file" | sha256sum | cut -d' ' -f1) || rc=$?
    if ((rc != 0)) || [[ ! $sha =~ ^[0-9a-f]{64}$ ]]; then echo "cannot compress $file" >&2; return 1; fi
  fi
  wa_exists "$key" && rc=0 || rc=$?
  if ((rc != 1)); then
    # 0: uploaded before (e.g. by an archiver killed before it removed the local copy), never
    # overwritten; 2: the listing failed (its error is on stderr).
    [[ -z $tmp ]] || rm -f -- "$tmp"
    return $((rc == 0 ? 0 : 1))
  fi
  out="$RESTORABLE_RUN_DIR/put.$BASHPID.xml"
  rc=0
  if [[ -n $tmp ]]; then
    restorable_s3_request PUT "$key" "" "$sha" "$out" -H "Content-Type: application/octet-stream" \
      -H "x-amz-meta-sha256: $sha" --data-binary @"$tmp" || rc=$?
    rm -f -- "$tmp"
  else
    zstd "${zstd_args[@]}" -- "$file" | restorable_s3_request PUT "$key" "" "$sha" "$out" \
      -H "Content-Type: application/octet-stream" -H "x-amz-meta-sha256: $sha" --data-binary @- || rc=$?
  fi
  rm -f -- "$out"
  return "$rc"
}

# wa_ship_file C FILE NAME [WHAT]: upload FILE of cluster C as WAL object NAME (its key, .age when
# encrypting). On failure, says so once per NAME ("cannot upload WHAT yet (will retry)"; WHAT is
# NAME unless given) and returns non-zero; the caller keeps FILE for the next round.
wa_ship_file() {
  local c=$1 file=$2 f=$3 what=${4:-$3} name=${RESTORABLE_PITR_CLUSTER[$1]} key
  key="${RESTORABLE_PREFIX}wal/$name/$f.zst"
  if ((${#RESTORABLE_AGE_RECIPIENTS[@]} > 0)); then key+=.age; fi
  restorable_try upload wa_upload "$file" "$key" && return 0
  if [[ ${WA_SHIP_ERROR[$c]:-} != "$f" ]]; then
    restorable_log "cluster $name: cannot upload $what yet (will retry): $RESTORABLE_ERROR_REASON"
    WA_SHIP_ERROR[$c]=$f
  fi
  return 1
}

# wa_ship C: upload the completed segments in order; stop at the first failure (no gap: a later
# segment is never uploaded while an earlier one is missing).
wa_ship() {
  local c=$1 name=${RESTORABLE_PITR_CLUSTER[$1]} spool f seg logno segno
  spool=$(wa_spool "$c")
  local -a files=()
  mapfile -t files < <(find "$spool" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null | grep -E "$WAL_NAME" | LC_ALL=C sort)
  for f in "${files[@]}"; do
    wa_ship_file "$c" "$spool/$f" "$f" || return 1
    if [[ -n ${WA_SHIP_ERROR[$c]:-} ]]; then
      restorable_log "cluster $name: uploads work again"
      WA_SHIP_ERROR[$c]=
    fi
    rm -f -- "${spool:?}/$f"
    if [[ $f =~ ^[0-9A-F]{24}$ ]]; then
      seg=${f:8:16}
      logno=$((16#${seg:0:8}))
      segno=$((16#${seg:8:8}))
      WA_SHIPPED_END[$c]=$((logno * 4294967296 + (segno + 1) * WA_SEGSIZE[$c]))
    fi
  done
  return 0
}

# wa_seg_name VAR C TIMELINE_HEX BYTES: the name of cluster C's segment holding byte position
# BYTES on that timeline, into VAR.
wa_seg_name() {
  local segno=$(($4 / WA_SEGSIZE[$2])) per=$((4294967296 / WA_SEGSIZE[$2]))
  printf -v "$1" '%s%08X%08X' "$3" "$((segno / per))" "$((segno % per))"
}

# wa_tick C: one round for cluster C: receiver, shipping, the quiet-server switch, the alarm.
wa_tick() {
  local c=$1 i=${RESTORABLE_PITR_SOURCE[$1]} name=${RESTORABLE_PITR_CLUSTER[$1]} slot=${RESTORABLE_PITR_SLOT[$1]}
  local now row lsn_text offset walfile='' status xmax lsn age back_since=''
  wa_check_receiver "$c"
  wa_ship "$c" || true
  wa_mono
  now=$WA_MONO
  row=
  # The slot's wal_status is NULL while it reserves no WAL (a slot made by an older version with
  # pg_receivewal --create-slot, before a receiver first streams): 'unused', not 'missing'.
  if restorable_try connect wa_sql "$i" "SELECT pg_current_wal_lsn(), (pg_walfile_name_offset(pg_current_wal_lsn())).file_offset, pg_walfile_name(pg_current_wal_lsn()), coalesce((SELECT coalesce(wal_status, 'unused') FROM pg_replication_slots WHERE slot_name = '$slot'), 'missing'), pg_snapshot_xmax(pg_current_snapshot())" >"$RESTORABLE_RUN_DIR/tick.$c"; then
    row=$(grep -m1 '|' "$RESTORABLE_RUN_DIR/tick.$c" || true)
  fi
  if [[ -n $row ]]; then
    IFS='|' read -r lsn_text offset walfile status xmax <<<"$row"
    if [[ -n ${WA_UNMEASURED_SINCE[$c]} ]]; then
      restorable_log "cluster $name: the server answers again after $((now - WA_UNMEASURED_SINCE[$c]))s"
      back_since=${WA_UNMEASURED_SINCE[$c]}
      WA_UNMEASURED_SINCE[$c]=
    fi
    lsn=$(wa_lsn "$lsn_text")
    # The segment the next WAL goes into, and the offset in it. Not pg_walfile_name's: at a
    # segment boundary (right after a switch, on a quiet server) it names the segment before,
    # which the receiver may still be writing: taken for the current one below, that segment
    # would count as off-site while it is not.
    if [[ ${WA_SEGSIZE[$c]:-} =~ ^[1-9][0-9]*$ ]]; then
      offset=$((lsn % WA_SEGSIZE[$c]))
      wa_seg_name walfile "$c" "${walfile:0:8}" "$lsn"
    fi
    # Quiet server: the current segment holds a transaction not yet archived -> switch after
    # SWITCH_AFTER. "A transaction": the next xid moved since our last switch. Not just "offset > 0":
    # an idle server writes a small running-xacts record after every switch, and switching for it
    # would churn a whole segment (16 MB by default) every few seconds forever.
    if ((offset > 0)) && [[ $xmax != "${WA_SWITCH_XID[$c]:-}" ]]; then
      if [[ -z ${WA_DIRTY_SINCE[$c]} ]]; then WA_DIRTY_SINCE[$c]=$now; fi
      if ((now - WA_DIRTY_SINCE[$c] >= SWITCH_AFTER)); then
        if restorable_try connect wa_sql "$i" "SELECT pg_switch_wal()" >/dev/null; then
          WA_DIRTY_SINCE[$c]=
          WA_SWITCH_XID[$c]=$xmax
          # Give the receiver a moment to complete the segment, then ship it in this round.
          sleep 1
          wa_ship "$c" || true
        else
          restorable_log "cluster $name: pg_switch_wal() failed (it needs superuser or GRANT EXECUTE ON FUNCTION pg_switch_wal): $RESTORABLE_ERROR_REASON"
        fi
      fi
    else
      WA_DIRTY_SINCE[$c]=
    fi
    # The receiver is in the server's current segment and nothing completed waits in the spool:
    # everything before the current segment is in the bucket.
    # (The partial first: once it is there, every earlier segment was completed before, so the
    # count after it sees them; counted first, one completed between the two would be missed.)
    local waiting=1
    if [[ -e "$(wa_spool "$c")/$walfile.partial" ]]; then
      waiting=$(find "$(wa_spool "$c")" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null | grep -cE "$WAL_NAME" || true)
    fi
    if ((waiting == 0)) && ((lsn - offset > WA_SHIPPED_END[$c])); then
      WA_SHIPPED_END[$c]=$((lsn - offset))
    fi
    # Not off-site yet: the archive does not reach the current segment, or a transaction waits in
    # it. Its clock starts when first seen, and restarts whenever the archive passes that point.
    # First seen right after a time the server could not be queried: that WAL may have been
    # written at any moment of it, so its clock starts when the server stopped answering (else
    # "caught up" would be said at the first answer, before what it wrote meanwhile is off-site).
    if ((lsn - offset > WA_SHIPPED_END[$c])) || [[ -n ${WA_DIRTY_SINCE[$c]} ]]; then
      if [[ -z ${WA_UNSHIPPED_SINCE[$c]} ]] || ((WA_UNSHIPPED_LSN[$c] <= WA_SHIPPED_END[$c])); then
        WA_UNSHIPPED_SINCE[$c]=${back_since:-$now}
        WA_UNSHIPPED_LSN[$c]=$lsn
      fi
    else
      WA_UNSHIPPED_SINCE[$c]=
    fi
    # A lost slot: the server removed WAL the slot held for the receiver, so the archive has a gap
    # (where exactly, the receiver says when it cannot resume: wa_resume_after_gap). A missing one
    # (dropped by hand): made again; a gap only if the receiver then cannot resume.
    if [[ $status == lost || $status == missing ]]; then
      if [[ $status == lost ]]; then
        wa_gap "$c" "" "$now"
        wa_sql "$i" "SELECT pg_drop_replication_slot('$slot')" >/dev/null 2>&1 || true
      fi
      if wa_create_slot "$c" >/dev/null 2>&1 && [[ $status == lost ]]; then wa_gap_slot_made "$c"; fi
    fi
  else
    # The server cannot be measured: the receiver cannot stream from it either, so the WAL it
    # writes meanwhile is not being archived, and no age above sees it. How long this lasts is
    # an age of its own (from the first failed query, on the monotonic clock).
    if [[ -z ${WA_UNMEASURED_SINCE[$c]} ]]; then WA_UNMEASURED_SINCE[$c]=$now; fi
    WA_UNMEASURED_WHY[$c]=${RESTORABLE_ERROR_REASON:-no answer}
    wa_log_once "$c" "cannot query the server (will retry): ${WA_UNMEASURED_WHY[$c]}"
  fi
  if [[ -n $row ]]; then WA_CONNECT_ERROR[$c]=; fi
  # The alarm: WAL older than the RPO is not off-site (a completed segment waiting in the spool,
  # or WAL on the server the archive has not reached).
  # Or the server has not answered for longer than the RPO (nothing can be measured then).
  local first first_age unshipped_age=0 unmeasured_age=0 missing
  wa_waiting "$c" "$now"
  first=$WA_FIRST first_age=$WA_FIRST_AGE
  if [[ -n ${WA_UNSHIPPED_SINCE[$c]} ]]; then unshipped_age=$((now - WA_UNSHIPPED_SINCE[$c])); fi
  if [[ -n ${WA_UNMEASURED_SINCE[$c]} ]]; then unmeasured_age=$((now - WA_UNMEASURED_SINCE[$c])); fi
  age=$((first_age > unshipped_age ? first_age : unshipped_age))
  age=$((unmeasured_age > age ? unmeasured_age : age))
  # A gap: until a base backup after it, a restore reaches no further than the gap, so the WAL
  # lost is all of it since then: the age says so (the drill and the gauge read it), and it is
  # an alarm at once, not after the RPO.
  local gap_age=-1
  if [[ -n ${WA_GAP[$c]+set} ]]; then
    if wa_gap_covered "$c" "$now"; then
      restorable_log "cluster $name: base backup $WA_GAP_BASE was taken after the gap from ${WA_GAP[$c]:-the last archived segment}: every time from it on is restorable again"
      unset "WA_GAP[$c]"
    else
      gap_age=$((now - WA_GAP_SINCE[$c]))
      age=$((gap_age > age ? gap_age : age))
    fi
  fi
  restorable_pitr_write_status "$name" "$EPOCHSECONDS" "$age" || true
  WA_AGE[$c]=$age WA_AGE_AT[$c]=$EPOCHSECONDS
  if ((gap_age >= 0)); then
    wa_alarm "$c" "the server dropped WAL the archive never received (slot $slot was invalidated at max_slot_wal_keep_size, or dropped): the archive has a gap from ${WA_GAP[$c]:-the segment after the last archived one}; a restore reaches no further than the gap (${gap_age}s ago) until a base backup is taken after it: run backup-base now"
    return
  fi
  if ((age > RESTORABLE_RPO_SECONDS)); then
    # Nothing completed waits: the first segment the archive does not reach (after the last
    # shipped one when that is known in this run, else the server's current one).
    local from_seg=${walfile:-}
    if [[ -z $first && -n $from_seg && ${WA_SHIPPED_END[$c]:-0} -gt 0 && ${WA_SEGSIZE[$c]:-} =~ ^[1-9][0-9]*$ ]]; then
      wa_seg_name from_seg "$c" "${walfile:0:8}" "${WA_SHIPPED_END[$c]}"
    fi
    missing="${first:-the segment ${from_seg:-after the last archived one}} and later are missing from $(restorable_s3_url "${RESTORABLE_PREFIX}wal/$name/")${WA_SHIP_ERROR[$c]:+ (upload error, see above)}"
    if ((unmeasured_age > RESTORABLE_RPO_SECONDS)); then
      local also=''
      if ((first_age > RESTORABLE_RPO_SECONDS)); then also="; also $missing"; fi
      wa_alarm "$c" "cannot query the server for ${unmeasured_age}s (> RPO ${RESTORABLE_RPO_SECONDS}s): WAL it writes meanwhile is not being archived (the receiver cannot stream from it either; a deliberately stopped server raises this too: the archiver cannot tell it from an unreachable one)$also: ${WA_UNMEASURED_WHY[$c]}"
    else
      wa_alarm "$c" "WAL older than the RPO (${age}s > ${RESTORABLE_RPO_SECONDS}s) is not off-site: $missing"
    fi
    return
  fi
  if [[ -n ${WA_ALARM[$c]} ]]; then
    restorable_log "cluster $name: caught up: the archive is within the RPO again"
    WA_ALARM[$c]=
    restorable_ping success
  fi
}

# wa_waiting C NOW: WA_FIRST = the oldest completed segment waiting in cluster C's spool (empty:
# none), WA_FIRST_AGE = how long it has waited. Each file's wait is timed on the monotonic clock
# from when this archiver first saw it. A file already there at the archiver's first look
# predates it: its wait until then is its mtime's age on the wall clock (below zero, the clock
# went back, counts as zero). That first look is the only time the wall clock counts, so a jump
# while the archiver runs changes no wait, either way (a segment written before a jump forward
# would otherwise look that much older at once: a false alarm on a healthy archive).
wa_waiting() {
  local c=$1 now=$2 spool f mtime age born
  local -A here=()
  spool=$(wa_spool "$c")
  WA_FIRST='' WA_FIRST_AGE=0
  while IFS= read -r f; do
    if [[ -z ${WA_SEEN["$c/$f"]:-} ]]; then
      age=0
      if [[ -z ${WA_LOOKED[$c]:-} ]]; then
        mtime=$(stat -c %Y -- "$spool/$f" 2>/dev/null || echo "$EPOCHSECONDS")
        age=$((EPOCHSECONDS - mtime))
        if ((age < 0)); then age=0; fi
      fi
      WA_SEEN["$c/$f"]=$((now - age))
    fi
    born=${WA_SEEN["$c/$f"]}
    here["$c/$f"]=1
    if [[ -z $WA_FIRST ]]; then WA_FIRST=$f WA_FIRST_AGE=$((now - born)); fi
  done < <(find "$spool" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null | grep -E "$WAL_NAME" | LC_ALL=C sort)
  # Forget the files that have gone (shipped).
  for f in "${!WA_SEEN[@]}"; do
    if [[ $f == "$c/"* && -z ${here[$f]:-} ]]; then unset 'WA_SEEN[$f]'; fi
  done
  WA_LOOKED[$c]=1
}

# wa_alarm C REASON: log it; the failure ping when it starts and again every REPEAT_ALARM seconds.
wa_alarm() {
  local c=$1 reason=$2 now
  wa_mono
  now=$WA_MONO
  if [[ -z ${WA_ALARM[$c]} ]] || ((now - WA_ALARM_AT[$c] >= REPEAT_ALARM)); then
    restorable_log "FAILED at stage archive: cluster ${RESTORABLE_PITR_CLUSTER[c]}: $reason"
    restorable_ping fail
    WA_ALARM_AT[$c]=$now
  fi
  WA_ALARM[$c]=1
}

# wa_metrics: the clusters' gauges (lib-metrics.sh: the unarchived WAL's age and when it was
# measured) into the textfile, every METRICS_EVERY seconds and whenever an alarm starts or ends:
# an alert rule sees the same age the alarm does, and a stale check time when the archiver is gone.
METRICS_EVERY=30 WA_METRICS_AT=-1 WA_METRICS_ALARMS=
wa_metrics() {
  [[ -n ${RESTORABLE_METRICS_DIR:-} ]] || return 0
  local alarms="${!WA_ALARM[*]}=${WA_ALARM[*]}" c host l
  wa_mono
  if ((WA_METRICS_AT >= 0 && WA_MONO - WA_METRICS_AT < METRICS_EVERY)) && [[ $alarms == "$WA_METRICS_ALARMS" ]]; then return 0; fi
  WA_METRICS_AT=$WA_MONO WA_METRICS_ALARMS=$alarms
  host=$(restorable_metric_label "$RESTORABLE_HOST")
  for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do
    [[ -n ${WA_AGE_AT[$c]:-} ]] || continue
    l="host=\"$host\",cluster=\"$(restorable_metric_label "${RESTORABLE_PITR_CLUSTER[c]}")\""
    printf 'restorable_wal_archive_unarchived_seconds{%s} %s\n' "$l" "${WA_AGE[$c]}"
    printf 'restorable_wal_archive_check_timestamp_seconds{%s} %s\n' "$l" "${WA_AGE_AT[$c]}"
  done | restorable_metrics_fragment wal-archive
}

# ------------------------------------------------------------------------------------------ main

needs=(zstd sha256sum curl flock)
for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do
  # A sidecar brings its own client tools (the database's image); the host needs docker.
  if wa_in_docker "$c"; then needs+=(docker); else needs+=(pg_receivewal psql); fi
done
for what in "${needs[@]}"; do
  if ! command -v "$what" >/dev/null; then restorable_fail preflight "$what is not installed"; fi
done
if [[ $(restorable_s3_small_client) != curl ]]; then
  restorable_fail preflight "the WAL archiver needs curl 7.87 or newer (signed uploads with a payload hash)"
fi
for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do wa_setup "$c"; done
# "Archiving" once each receiver streams (up to 30 s; one that cannot is the rounds' to report).
for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do
  wa_check_receiver "$c"
  for ((k = 0; k < 60; k++)); do wa_streaming "$c" && break; sleep 0.5; done
done
restorable_log "archiving WAL of ${#RESTORABLE_PITR_CLUSTER[@]} cluster(s) to $(restorable_s3_url "${RESTORABLE_PREFIX}wal/"): each segment off-site within ${SHIP}s (a round every ${TICK}s)"
RESTORABLE_STAGE=archive
while :; do
  for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do wa_tick "$c"; done
  wa_metrics
  # Keep the run's log (the fail ping's body) bounded in a process that runs for months.
  if (($(stat -c %s "$RESTORABLE_RUN_DIR/log" 2>/dev/null || echo 0) > 1048576)); then
    tail -c 100000 "$RESTORABLE_RUN_DIR/log" >"$RESTORABLE_RUN_DIR/log.tmp" && mv -f -- "$RESTORABLE_RUN_DIR/log.tmp" "$RESTORABLE_RUN_DIR/log"
  fi
  sleep "$TICK" {WA_LOCK_FD}>&- &
  wait $! || true
done
