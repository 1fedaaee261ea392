# shellcheck shell=bash
# restorable: shared shell library, sourced by backup, backup-volumes, restore and restore-drill
# from their own directory. Installed as <scriptsDir>/lib.sh (0644) by `pulumi up`; rendered from
# scripts/lib.sh in the repository (placeholders between double at-signs are substituted, each
# shell-quoted; see infra/plan/render.ts).
#
# Exit codes (contract; the same for all four scripts):
#   0  the whole job succeeded
#   1  a stage failed
#   2  usage or configuration error (bad arguments, unreadable config, missing credentials)
#   3  another run of the same script holds its lock
# On failure the last line on stderr is
#   <UTC time> restorable <script>: FAILED at stage <stage>: <reason>
# and, when a ping URL is configured, <url>/fail receives the tail of the run's log. A signal is a
# failure of the stage it arrives in (exit 1, "interrupted by SIGTERM"), after the run's children
# and throwaways are torn down (restorable_traps, below).
#
# Environment overrides: RESTORABLE_CONFIG (path of restorable.conf; default substituted at
# render time), RESTORABLE_NOW (ISO-8601 UTC clock deciding stamp and tier, for tests).
#
# Conventions: functions and variables are prefixed restorable_ / RESTORABLE_; names with a
# double underscore are internal. Secrets (credentials file) reach child processes only through
# their environment (PGPASSWORD, AWS_*): never argv, never a log line. Never use `set -x`.

# shellcheck disable=SC2034  # constants and results are used by the sourcing scripts
RESTORABLE_EXIT_FAILED=1
# shellcheck disable=SC2034
RESTORABLE_EXIT_USAGE=2
# shellcheck disable=SC2034
RESTORABLE_EXIT_LOCKED=3

# The installed restorable.conf and state dir (substituted at render time). Run from a checkout
# (not rendered) there is no default config: RESTORABLE_CONFIG is required.
RESTORABLE_DEFAULT_CONFIG=@@DEFAULT_CONFIG@@
RESTORABLE_DEFAULT_STATE_DIR=@@STATE_DIR@@
if [[ $RESTORABLE_DEFAULT_CONFIG == @@* ]]; then RESTORABLE_DEFAULT_CONFIG=""; fi
if [[ $RESTORABLE_DEFAULT_STATE_DIR == @@* ]]; then RESTORABLE_DEFAULT_STATE_DIR="${TMPDIR:-/tmp}/restorable-state"; fi

# Every date this prints or parses is UTC, whatever the host's zone: the log's "...Z" stamps and
# the %(...)T dates are local time otherwise (mislabelled on a host in Europe/Berlin).
export TZ=UTC

# Cron runs jobs with a bare PATH; put the usual directories first.
PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"
export PATH

RESTORABLE_SCRIPT=${RESTORABLE_SCRIPT:-restorable}
RESTORABLE_STAGE=init
RESTORABLE_RUN_DIR=
RESTORABLE__STARTED=$EPOCHREALTIME   # when the run started (restorable_init / restorable_traps reset it)

# ------------------------------------------------------------------------------------------ log

restorable_utc() { printf '%(%Y-%m-%dT%H:%M:%SZ)T\n' -1; }

# restorable_log MESSAGE...: one line with a UTC timestamp on stderr (and in the run's log,
# $RESTORABLE_RUN_DIR/log, which the fail ping carries):
#   2026-11-24T03:00:00Z restorable <script>: message
restorable_log() {
  local line
  printf -v line '%(%Y-%m-%dT%H:%M:%SZ)T restorable %s: %s' -1 "$RESTORABLE_SCRIPT" "$*"
  line=${line//$'\n'/ }
  printf '%s\n' "$line" >&2
  if [[ -n $RESTORABLE_RUN_DIR && -d $RESTORABLE_RUN_DIR ]]; then
    printf '%s\n' "$line" >>"$RESTORABLE_RUN_DIR/log" 2>/dev/null || true
  fi
}

# restorable_say MESSAGE...: say something to the operator (stdout) and put it in the run's log.
restorable_say() {
  printf '%s\n' "$*"
  if [[ -n $RESTORABLE_RUN_DIR && -d $RESTORABLE_RUN_DIR ]]; then
    local line
    printf -v line '%(%Y-%m-%dT%H:%M:%SZ)T restorable %s: %s' -1 "$RESTORABLE_SCRIPT" "$*"
    printf '%s\n' "${line//$'\n'/ }" >>"$RESTORABLE_RUN_DIR/log" 2>/dev/null || true
  fi
}

# restorable_fail STAGE REASON [EXIT_CODE]: THE way a run fails (exit code 1 by default; 2 usage or
# configuration, 3 locked). Under the run's handlers (restorable_traps) it records the first
# failure and exits; the EXIT handler tears the run down, then prints the one failure line and
# pings /fail. In a child that has its own EXIT trap (a drill item, the throwaway's startup) it
# only ends the child, which reports the recorded failure. Without the handlers (a library
# function called on its own) it prints the line and exits at once.
RESTORABLE_FAIL_STAGE='' RESTORABLE_FAIL_REASON=''
restorable_fail() {
  local stage=$1 reason=$2 code=${3:-1}
  if [[ -n $RESTORABLE__TRAPPED ]]; then
    if [[ -z $RESTORABLE_FAIL_REASON ]]; then RESTORABLE_FAIL_STAGE=$stage RESTORABLE_FAIL_REASON=$reason; fi
    exit "$code"
  fi
  RESTORABLE__REPORTED=1
  restorable_log "FAILED at stage $stage: $reason"
  if [[ -n $RESTORABLE__PINGS ]]; then restorable_ping fail; fi
  exit "$code"
}

# restorable_summarize_err FILE FALLBACK: the stderr of a failed command as one short line.
restorable_summarize_err() {
  local file=$1 fallback=$2 text=
  if [[ -s $file ]]; then
    # Non-empty lines, joined; long output keeps its end (where the error usually is).
    text=$(grep -v '^[[:space:]]*$' "$file" | tail -n 6 | tr '\n\t' '  ' | sed 's/  */ /g; s/ $//') || true
  fi
  [[ -n $text ]] || text=$fallback
  if [[ $text == *"argument of type 'NoneType' is not iterable"* ]]; then
    # AWS CLI 2.9 crashes on S3 errors without a <Message> (Ceph RGW sends those) and hides the code.
    text+=" (the S3 server answered with an error without a message, which this AWS CLI cannot display)"
  fi
  if ((${#text} > 600)); then text="...${text: -600}"; fi
  printf '%s' "$text"
}

# restorable_status_text NAME STATUS: "pg_dump exited with status 1" / "... was killed by signal KILL".
restorable_status_text() {
  local name=$1 st=$2
  if ((st > 128 && st < 160)); then
    printf '%s was killed by signal %s' "$name" "$(kill -l "$((st - 128))" 2>/dev/null || echo "$((st - 128))")"
  else
    printf '%s exited with status %s' "$name" "$st"
  fi
}

# ------------------------------------------------------------------------------------------ pings

# restorable_ping start|success|fail: healthchecks-style ping with the run log's tail as body.
# No URL configured: nothing is sent. A failed ping is logged and never fails the job.
restorable_ping() {
  local kind=$1 url=${RESTORABLE_PING_URL:-} log=/dev/null
  if [[ $kind == start ]]; then RESTORABLE__PINGS=1 RESTORABLE__PINGED_START=1; fi
  [[ -n $url ]] || return 0
  url=${url%/}
  case $kind in
    start) url+=/start ;;
    fail) url+=/fail ;;
    success) ;;
    *) return 0 ;;
  esac
  local err=/dev/null
  if [[ -n $RESTORABLE_RUN_DIR && -d $RESTORABLE_RUN_DIR ]]; then
    log=$RESTORABLE_RUN_DIR/log
    err=$RESTORABLE_RUN_DIR/ping.err
  fi
  if ! tail -c 10000 "$log" | curl -fsS -m 10 --retry 2 --retry-max-time 20 -o /dev/null \
    -H 'Content-Type: text/plain; charset=utf-8' --data-binary @- "$url" 2>"$err"; then
    # The URL is not logged: it is a capability (anyone holding it can ping).
    restorable_log "warning: $kind ping failed: $(restorable_summarize_err "$err" "curl failed")"
  fi
  return 0
}

# ------------------------------------------------------------------------------------------ clock

# restorable_clock: sets RESTORABLE_EPOCH, RESTORABLE_STAMP (20261124T030000Z),
# RESTORABLE_CREATED_AT (2026-11-24T03:00:00Z) and the bounds of the current ISO week (UTC,
# Monday to Sunday) as days, RESTORABLE_WEEK_FROM (20261123) and RESTORABLE_WEEK_TO (20261130,
# the next Monday), from RESTORABLE_NOW or the clock.
restorable_clock() {
  local now=${RESTORABLE_NOW:-}
  if [[ -n $now ]]; then
    if [[ ! $now =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$ ]] ||
      ! RESTORABLE_EPOCH=$(date -u -d "$now" +%s 2>/dev/null); then
      restorable_fail config "RESTORABLE_NOW=$now is not an ISO-8601 UTC time like 2026-11-24T03:00:00Z" 2
    fi
  else
    RESTORABLE_EPOCH=$(date -u +%s)
  fi
  RESTORABLE_STAMP=$(date -u -d "@$RESTORABLE_EPOCH" +%Y%m%dT%H%M%SZ)
  RESTORABLE_CREATED_AT=$(date -u -d "@$RESTORABLE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  # 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
  local day=$((RESTORABLE_EPOCH / 86400)) monday
  monday=$((day - (day + 3) % 7))
  RESTORABLE_WEEK_FROM=$(date -u -d "@$((monday * 86400))" +%Y%m%d)
  RESTORABLE_WEEK_TO=$(date -u -d "@$(((monday + 7) * 86400))" +%Y%m%d)
}

# restorable_tier ITEM: sets RESTORABLE_TIER to the tier this run's restore point of ITEM
# (postgres/<database>, globals, volumes/<volume>) goes into, from the restore points the
# preflight listing saw (manifests <prefix><tier>/ITEM/<stamp>.manifest.json; a data object
# without its manifest does not count). Same rule as tierFor in infra/plan/layout.ts:
#   monthly  if there is no monthly restore point of ITEM stamped in the current UTC month,
#   weekly   else if there is no weekly or monthly one stamped in the current ISO week,
#   daily    otherwise.
restorable_tier() {
  local item=$1 key rest tier stamp day monthly='' weekly=''
  local month=${RESTORABLE_STAMP:0:6}
  for key in "${!RESTORABLE_EXISTING_KEYS[@]}"; do
    [[ $key == "$RESTORABLE_PREFIX"*/"$item"/*.manifest.json ]] || continue
    rest=${key#"$RESTORABLE_PREFIX"}
    tier=${rest%%/*}
    rest=${rest#*/}
    stamp=${rest#"$item"/}
    stamp=${stamp%.manifest.json}
    [[ $rest == "$item/$stamp.manifest.json" && $stamp =~ ^[0-9]{8}T[0-9]{6}Z$ ]] || continue
    day=${stamp:0:8}
    case $tier in
      monthly)
        if [[ ${stamp:0:6} == "$month" ]]; then monthly=1; fi
        if [[ ! $day < $RESTORABLE_WEEK_FROM && $day < $RESTORABLE_WEEK_TO ]]; then weekly=1; fi
        ;;
      weekly)
        if [[ ! $day < $RESTORABLE_WEEK_FROM && $day < $RESTORABLE_WEEK_TO ]]; then weekly=1; fi
        ;;
    esac
  done
  if [[ -z $monthly ]]; then
    RESTORABLE_TIER=monthly
  elif [[ -z $weekly ]]; then
    RESTORABLE_TIER=weekly
  else
    RESTORABLE_TIER=daily
  fi
}

# restorable_realtime: seconds since the epoch with microseconds (bash 5 EPOCHREALTIME), for
# restorable_elapsed.
restorable_realtime() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }

# restorable_elapsed [START]: seconds since START (an $EPOCHREALTIME / restorable_realtime value;
# default: since the run started), with milliseconds (12.345).
restorable_elapsed() {
  local start=${1:-$RESTORABLE__STARTED}
  local now=${EPOCHREALTIME//[.,]/}
  start=${start//[.,]/}
  local ms=$(((10#$now - 10#$start) / 1000))
  printf '%d.%03d' "$((ms / 1000))" "$((ms % 1000))"
}

# restorable_now: "now" as epoch seconds: RESTORABLE_NOW (ISO-8601 UTC, for tests and operators)
# or the clock. (restorable_clock: the same moment as the backup jobs' stamp and week.)
restorable_now() {
  if [[ -n ${RESTORABLE_NOW:-} ]]; then
    date -u -d "$RESTORABLE_NOW" +%s
  else
    date -u +%s
  fi
}
# restorable_iso EPOCH -> 2026-11-24T03:00:00Z; restorable_stamp EPOCH -> 20261124T030000Z
restorable_iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
restorable_stamp() { date -u -d "@$1" +%Y%m%dT%H%M%SZ; }
# restorable_stamp_epoch STAMP: 20261124T030000Z -> epoch seconds (1 when it is not a stamp)
restorable_stamp_epoch() {
  local s=$1
  [[ $s =~ ^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z$ ]] || return 1
  date -u -d "${BASH_REMATCH[1]}-${BASH_REMATCH[2]}-${BASH_REMATCH[3]}T${BASH_REMATCH[4]}:${BASH_REMATCH[5]}:${BASH_REMATCH[6]}Z" +%s
}

# ------------------------------------------------------------------------------------------ setup

# restorable_no_args NAME SCRIPT [ARGS...]: for scripts that take no arguments. --help prints the
# script's header comment (up to its `set -euo` line); anything else is a usage error (exit 2).
restorable_no_args() {
  local name=$1 script=$2
  shift 2
  RESTORABLE_SCRIPT=$name
  (($# == 0)) && return 0
  case $1 in
    -h | --help)
      sed -n '2,/^set -euo/p' "$script" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      # The contract's failure line (no ping: the run never started).
      restorable_log "FAILED at stage usage: $name takes no arguments, got \"$1\" (see $name --help)"
      exit 2
      ;;
  esac
}

# ------------------------------------------------------------------------------------------ run control

# One handler set for every job (restorable_traps; restorable_init installs it for the backup
# jobs, restore and restore-drill call it before they read their arguments):
#   ERR         remembers the failing command (for an "unexpected error at line N: CMD" line)
#   INT TERM HUP  record "interrupted by SIG<NAME>" at the current stage (a child's, when a child
#               does the stage's work: RESTORABLE_CHILD_STAGE_FILE) and exit 1, like any failed stage
#   EXIT        tears the run down, then reports it, in this order:
#                 1. the progress watcher, the running child (RESTORABLE_CHILD) and the background
#                    jobs (RESTORABLE_BG_PIDS), each with all its descendants (restorable_kill_tree)
#                 2. the cleanups registered with restorable_on_exit (lib-restore.sh: downloads,
#                    throwaway volumes and the throwaway Postgres), in the order registered; a slow
#                    one may run on in the background if it adds its pid to RESTORABLE_TEARDOWN_PIDS
#                 3. the script's own restorable_on_finish RC, when it defines one (the drill's
#                    report); setting RESTORABLE_FAIL_STAGE/REASON there fails a run that succeeded
#                 4. waits for RESTORABLE_TEARDOWN_PIDS
#                 5. the one failure line (last on stderr) and /fail, or the success ping; pings
#                    only once the run is pinging (RESTORABLE__PINGS: the backup jobs from
#                    restorable_init on, the drill from its start ping; restore never pings), and
#                    the success ping only after a start ping
#                 6. the job's textfile metrics (RESTORABLE_METRICS_JOB, when set)
#                 7. removes RESTORABLE_RUN_ROOT (default: the run dir), last: the fail ping read it
#               and exits with the run's status (0, or the failure's 1, 2 or 3).
# A run that ended quietly on purpose (wal-archiver: another archiver runs, or it was stopped)
# sets RESTORABLE__REPORTED=1: no failure line, no ping.
RESTORABLE__TRAPPED=''       # the handlers are installed: restorable_fail records, the EXIT handler reports
RESTORABLE__FINISHING=0      # the EXIT handler runs: signals are ignored
RESTORABLE__REPORTED=''
RESTORABLE__PINGS=''         # /fail (and success, after a start ping) at the end
RESTORABLE__PINGED_START=''
RESTORABLE_LAST_ERR=''
RESTORABLE_CHILD=''          # the child restorable_run waits for
RESTORABLE_CHILD_STAGE_FILE=''  # where that child writes the stage it is in (restore-drill's items)
RESTORABLE_BG_PIDS=()        # background jobs of this run (killed if the run ends before them)
RESTORABLE_CLEANUPS=()       # restorable_on_exit FUNC...
RESTORABLE_TEARDOWN_PIDS=()
RESTORABLE_METRICS_JOB=''
RESTORABLE_RUN_ROOT=''

# restorable_traps: install the run's handlers (see above).
restorable_traps() {
  RESTORABLE__TRAPPED=1
  RESTORABLE__STARTED=$EPOCHREALTIME
  set -E
  trap 'restorable__on_err $? $LINENO "$BASH_COMMAND"' ERR
  trap restorable__on_exit EXIT
  trap 'restorable__on_signal INT' INT
  trap 'restorable__on_signal TERM' TERM
  trap 'restorable__on_signal HUP' HUP
}

# restorable_on_exit FUNC...: have the EXIT handler call FUNC RC (step 2 above).
restorable_on_exit() { RESTORABLE_CLEANUPS+=("$@"); }

restorable__on_err() {
  # Remember the failing command for an "unexpected error" line; set -e does the exit.
  RESTORABLE_LAST_ERR="line $2: $3 (exit $1)"
}

restorable__on_signal() {
  if ((RESTORABLE__FINISHING)); then return 0; fi
  local stage=$RESTORABLE_STAGE
  if [[ -n $RESTORABLE_CHILD_STAGE_FILE && -s $RESTORABLE_CHILD_STAGE_FILE ]]; then stage=$(<"$RESTORABLE_CHILD_STAGE_FILE"); fi
  RESTORABLE_FAIL_STAGE=$stage RESTORABLE_FAIL_REASON="interrupted by SIG$1"
  exit "$RESTORABLE_EXIT_FAILED"
}

restorable__on_exit() {
  local rc=$? f pid
  RESTORABLE__FINISHING=1
  set +e
  trap - ERR
  trap '' INT TERM HUP
  if ((rc != 0)) && [[ -z $RESTORABLE_FAIL_REASON ]]; then
    RESTORABLE_FAIL_STAGE=$RESTORABLE_STAGE
    RESTORABLE_FAIL_REASON="unexpected error${RESTORABLE_LAST_ERR:+ at $RESTORABLE_LAST_ERR}"
    [[ -n $RESTORABLE_LAST_ERR ]] || RESTORABLE_FAIL_REASON+=" (exit status $rc)"
  fi
  if ((rc == 0)) && [[ -n $RESTORABLE_FAIL_REASON ]]; then rc=$RESTORABLE_EXIT_FAILED; fi
  # 1. children
  restorable_progress_stop
  if [[ -n $RESTORABLE_CHILD ]]; then
    restorable_kill_tree "$RESTORABLE_CHILD"
    wait "$RESTORABLE_CHILD" 2>/dev/null
    RESTORABLE_CHILD=''
  fi
  for pid in "${RESTORABLE_BG_PIDS[@]}"; do restorable_kill_tree "$pid"; done
  # 2.-4. cleanups, the script's hook, the background teardowns
  for f in "${RESTORABLE_CLEANUPS[@]}"; do "$f" "$rc"; done
  if declare -F restorable_on_finish >/dev/null; then restorable_on_finish "$rc"; fi
  for pid in "${RESTORABLE_TEARDOWN_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if ((rc == 0)) && [[ -n $RESTORABLE_FAIL_REASON ]]; then rc=$RESTORABLE_EXIT_FAILED; fi
  # 5. the report: one line, last on stderr, and one ping
  if [[ -z $RESTORABLE__REPORTED ]]; then
    RESTORABLE__REPORTED=1
    if ((rc != 0)); then
      restorable_log "FAILED at stage ${RESTORABLE_FAIL_STAGE:-$RESTORABLE_STAGE}: ${RESTORABLE_FAIL_REASON//$'\n'/ }"
      if [[ -n $RESTORABLE__PINGS ]]; then restorable_ping fail; fi
    elif [[ -n $RESTORABLE__PINGED_START ]]; then
      restorable_ping success
    fi
  fi
  # 6.-7.
  if [[ -n $RESTORABLE_METRICS_JOB ]]; then
    restorable_metrics_job "$RESTORABLE_METRICS_JOB" "$rc" "$(restorable_elapsed)" "${RESTORABLE_EPOCH:-$(restorable_now)}"
  fi
  local root=${RESTORABLE_RUN_ROOT:-$RESTORABLE_RUN_DIR}
  if [[ -n $root && -d $root ]]; then rm -rf -- "$root"; fi
  exit "$rc"
}

# restorable_run CMD...: run a command as a background child and wait for it, so that a signal to
# this script is handled at once (bash defers traps while a foreground child runs) and the EXIT
# handler can stop it. Returns its status. Only for external commands and simple wrappers: called
# in a condition (`if ! restorable_run f`), a shell function runs with set -e ignored.
restorable_run() {
  # <&0: keep our stdin (a background job would otherwise read /dev/null).
  "$@" <&0 &
  RESTORABLE_CHILD=$!
  local rc=0
  wait "$RESTORABLE_CHILD" || rc=$?
  RESTORABLE_CHILD=''
  return "$rc"
}

# restorable_kill_tree PID: TERM a process and all its descendants, then wait until they are gone
# (up to 5 s, then KILL), so that nothing outlives the script. Zombies count as gone (their parent
# reaps them). Works for processes that are not our children too (no `wait`).
restorable_tree_pids() {
  local p=$1 c
  for c in $(pgrep -P "$p" 2>/dev/null || true); do restorable_tree_pids "$c"; done
  printf '%s\n' "$p"
}
restorable_alive() {
  local st
  # (read, not a sed: no process per call, and the wait loops call it often)
  { IFS= read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
  st=${st##*) }
  [[ -n $st && ${st:0:1} != Z ]]
}
restorable_kill_tree() {
  local pids p i alive=""
  pids=$(restorable_tree_pids "$1")
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    alive=""
    for p in $pids; do if restorable_alive "$p"; then alive+="$p "; fi; done
    [[ -n $alive ]] || return 0
    sleep 0.1
  done
  for p in $alive; do kill -KILL "$p" 2>/dev/null || true; done
}

# ------------------------------------------------------------------------------------------ config

# restorable_load_config [KEY...]: read restorable.conf (RESTORABLE_CONFIG, default: the installed
# path) with every optional setting defaulted (so a config written by an older version still reads
# under `set -u`), and fail at stage config (exit 2) naming the first of KEY... (the settings this
# job cannot run without; default RESTORABLE_HOST RESTORABLE_BUCKET RESTORABLE_ENDPOINT) that is
# not set, or a malformed number. Credentials are restorable_load_credentials'.
restorable_load_config() {
  local -a need=("$@")
  ((${#need[@]})) || need=(RESTORABLE_HOST RESTORABLE_BUCKET RESTORABLE_ENDPOINT)
  RESTORABLE_STAGE=config
  RESTORABLE_CONFIG=${RESTORABLE_CONFIG:-$RESTORABLE_DEFAULT_CONFIG}
  if [[ -z $RESTORABLE_CONFIG ]]; then
    restorable_fail config "no config: set RESTORABLE_CONFIG to the path of a restorable.conf" 2
  fi
  if [[ ! -r $RESTORABLE_CONFIG || ! -f $RESTORABLE_CONFIG ]]; then
    restorable_fail config "cannot read config file $RESTORABLE_CONFIG (set RESTORABLE_CONFIG or reinstall with pulumi up)" 2
  fi
  RESTORABLE_AGE_RECIPIENTS=() RESTORABLE_VOLUMES=() RESTORABLE_DRILL_CHECKS=()
  RESTORABLE_PG_DATABASE=() RESTORABLE_PG_VIA=() RESTORABLE_PG_USER=() RESTORABLE_PG_PROJECT=()
  RESTORABLE_PG_SERVICE=() RESTORABLE_PG_CONTAINER=() RESTORABLE_PG_HOST=() RESTORABLE_PG_PORT=()
  RESTORABLE_PG_PASSWORD=()
  # shellcheck source=/dev/null
  if ! . "$RESTORABLE_CONFIG"; then
    restorable_fail config "config file $RESTORABLE_CONFIG could not be read" 2
  fi
  local v t
  for v in "${need[@]}"; do
    if [[ -z ${!v:-} ]]; then restorable_fail config "$v is not set in $RESTORABLE_CONFIG" 2; fi
  done
  RESTORABLE_REGION=${RESTORABLE_REGION:-us-east-1}
  RESTORABLE_PREFIX=${RESTORABLE_PREFIX:-$RESTORABLE_HOST/}
  RESTORABLE_STATE_DIR=${RESTORABLE_STATE_DIR:-$RESTORABLE_DEFAULT_STATE_DIR}
  RESTORABLE_CREDENTIALS=${RESTORABLE_CREDENTIALS:-}
  RESTORABLE_PING_URL=${RESTORABLE_PING_URL:-}
  RESTORABLE_RPO_SECONDS=${RESTORABLE_RPO_SECONDS:-86400}
  RESTORABLE_RTO_SECONDS=${RESTORABLE_RTO_SECONDS:-3600}
  RESTORABLE_RETENTION_DAILY=${RESTORABLE_RETENTION_DAILY:-7}
  RESTORABLE_RETENTION_WEEKLY=${RESTORABLE_RETENTION_WEEKLY:-4}
  RESTORABLE_RETENTION_MONTHLY=${RESTORABLE_RETENTION_MONTHLY:-12}
  RESTORABLE_VOLUME_IMAGE=${RESTORABLE_VOLUME_IMAGE:-busybox:1.36}
  RESTORABLE_DRILL_RUNTIME=${RESTORABLE_DRILL_RUNTIME:-docker}
  RESTORABLE_DRILL_IMAGE=${RESTORABLE_DRILL_IMAGE:-postgres:16}
  RESTORABLE_AGE_IDENTITY=${RESTORABLE_AGE_IDENTITY:-}
  for v in RESTORABLE_RPO_SECONDS RESTORABLE_RTO_SECONDS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || restorable_fail config "$v must be a number of seconds" 2
  done
  for t in DAILY WEEKLY MONTHLY; do
    v=RESTORABLE_RETENTION_$t
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || restorable_fail config "$v must be a whole number of restore points" 2
  done
}

# restorable_init SCRIPT_NAME: a backup job's start: the handlers (pinging /fail from here on),
# the config with every key a backup job needs, the state dir, the run dir, metrics, the clock.
restorable_init() {
  RESTORABLE_SCRIPT=$1
  umask 077
  restorable_traps
  RESTORABLE__PINGS=1
  RESTORABLE_METRICS_JOB=$1
  restorable_load_config RESTORABLE_HOST RESTORABLE_BUCKET RESTORABLE_ENDPOINT RESTORABLE_REGION RESTORABLE_PREFIX \
    RESTORABLE_CREDENTIALS RESTORABLE_STATE_DIR RESTORABLE_ZSTD_LEVEL
  if [[ ! -d $RESTORABLE_STATE_DIR ]] && mkdir -p "$RESTORABLE_STATE_DIR" 2>/dev/null; then
    chmod 0700 "$RESTORABLE_STATE_DIR" 2>/dev/null || true
  fi
  if [[ ! -d $RESTORABLE_STATE_DIR || ! -w $RESTORABLE_STATE_DIR ]]; then
    restorable_fail config "cannot create or write the state directory $RESTORABLE_STATE_DIR" 2
  fi
  if ! RESTORABLE_RUN_DIR=$(mktemp -d "$RESTORABLE_STATE_DIR/run.$RESTORABLE_SCRIPT.XXXXXXXX" 2>/dev/null); then
    RESTORABLE_RUN_DIR=
    restorable_fail config "cannot create a run directory in $RESTORABLE_STATE_DIR" 2
  fi
  : >"$RESTORABLE_RUN_DIR/log"
  restorable_clock
}

# restorable_lock NAME [optional]: take $RESTORABLE_STATE_DIR/NAME.lock for the rest of the run
# (the state dir is created 0700 when missing), or fail: exit 3 when another run holds it, 2 when
# the state dir or the lock file cannot be used. With "optional", an unusable state dir only logs a
# warning and the run goes on without the lock (restore: an operator restoring on a new machine
# may not have one).
restorable_lock() {
  local name=$1 optional=${2:-} file="$RESTORABLE_STATE_DIR/$1.lock"
  RESTORABLE_STAGE=lock
  if [[ ! -d $RESTORABLE_STATE_DIR ]] && mkdir -p -- "$RESTORABLE_STATE_DIR" 2>/dev/null; then
    chmod 0700 -- "$RESTORABLE_STATE_DIR" 2>/dev/null || true
  fi
  if [[ ! -d $RESTORABLE_STATE_DIR || ! -w $RESTORABLE_STATE_DIR ]]; then
    if [[ -n $optional ]]; then
      restorable_log "warning: state directory $RESTORABLE_STATE_DIR is not writable; running without the $name lock"
      return 0
    fi
    restorable_fail config "cannot create or write the state directory $RESTORABLE_STATE_DIR" 2
  fi
  if ! exec {RESTORABLE_LOCK_FD}>>"$file"; then
    restorable_fail lock "cannot open lock file $file" 2
  fi
  if ! flock -n "$RESTORABLE_LOCK_FD"; then
    restorable_fail lock "another $name run holds $file" 3
  fi
  restorable_rotate_log "$RESTORABLE_SCRIPT"
}

# restorable_rotate_log [JOB]: when this run's stdout is a *.log file directly in the state dir (the
# crontab's `>>STATE/<job>.log 2>&1`) that has reached RESTORABLE_LOG_MAX_BYTES, shift it to
# .1 .. .RESTORABLE_LOG_KEEP (the oldest is dropped) and go on writing into a fresh file. Called
# with the job's lock held, so two runs never rotate one log at once. Any other stdout (a
# terminal, a pipe, a file elsewhere) is left alone; without /proc nothing is rotated.
restorable_rotate_log() {
  local job=${1:-$RESTORABLE_SCRIPT} max=${RESTORABLE_LOG_MAX_BYTES:-10485760} keep=${RESTORABLE_LOG_KEEP:-5} dir log err size i
  log=$(readlink "/proc/$$/fd/1" 2>/dev/null) || return 0
  dir=$(cd -- "$RESTORABLE_STATE_DIR" 2>/dev/null && pwd -P) || return 0
  [[ $log == "$dir"/*.log && ${log%/*} == "$dir" && -f $log ]] || return 0
  size=$(stat -c %s -- "$log" 2>/dev/null) || return 0
  ((size >= max)) || return 0
  err=$(readlink "/proc/$$/fd/2" 2>/dev/null) || err=
  for ((i = keep - 1; i >= 1; i--)); do
    if [[ -e $log.$i ]]; then mv -f -- "$log.$i" "$log.$((i + 1))" || return 0; fi
  done
  mv -f -- "$log" "$log.1" || return 0
  if [[ $err == "$log" ]]; then exec >>"$log" 2>&1; else exec >>"$log"; fi
  printf '%s restorable %s: rotated %s (%s bytes) to %s.1, keeping %s generations\n' "$(restorable_utc)" "$job" "$log" "$size" "$log" "$keep" >&2
}

# restorable_load_credentials [optional]: source the 0600 credentials file (the only file with
# secrets), export AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; RESTORABLE_PG_PASSWORD stays
# unexported. The backup jobs need the file (stage credentials, exit 2). With "optional" (restore
# and restore-drill: an operator may restore on a machine without it) AWS_* exported in the
# environment do instead of a file that is not set or not readable, and the operator's PGPASSWORD
# is kept aside (RESTORABLE_ENV_PGPASSWORD) for a target that asks for it, not handed to every child.
# shellcheck disable=SC2120 # the backup jobs call it without the argument
restorable_load_credentials() {
  local f=$RESTORABLE_CREDENTIALS mode
  if [[ ${1:-} == optional ]]; then
    RESTORABLE_PG_PASSWORD=()
    if [[ -n $f ]]; then
      if [[ -r $f ]]; then
        # shellcheck source=/dev/null
        . "$f"
      elif [[ -z ${AWS_ACCESS_KEY_ID:-} ]]; then
        restorable_fail config "cannot read credentials $f (run as root, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)" 2
      fi
    fi
    if [[ -n ${AWS_ACCESS_KEY_ID:-} ]]; then export AWS_ACCESS_KEY_ID; fi
    if [[ -n ${AWS_SECRET_ACCESS_KEY:-} ]]; then export AWS_SECRET_ACCESS_KEY; fi
    if [[ -n ${AWS_SESSION_TOKEN:-} ]]; then export AWS_SESSION_TOKEN; fi
    RESTORABLE_ENV_PGPASSWORD=${PGPASSWORD:-}
    unset PGPASSWORD
    return 0
  fi
  RESTORABLE_STAGE=credentials
  if [[ ! -e $f ]]; then restorable_fail credentials "credentials file $f is missing (reinstall with pulumi up)" 2; fi
  if [[ ! -r $f ]]; then restorable_fail credentials "credentials file $f is not readable by $(id -un)" 2; fi
  mode=$(stat -c %a "$f" 2>/dev/null || echo '?')
  if [[ $mode != 600 && $mode != 400 ]]; then
    restorable_log "warning: credentials file $f has mode $mode; it should be 0600"
  fi
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
  RESTORABLE_PG_PASSWORD=()
  # shellcheck source=/dev/null
  if ! . "$f" >/dev/null 2>&1; then restorable_fail credentials "credentials file $f could not be read" 2; fi
  if [[ -z ${AWS_ACCESS_KEY_ID:-} || -z ${AWS_SECRET_ACCESS_KEY:-} ]]; then
    restorable_fail credentials "credentials file $f does not set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" 2
  fi
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  if [[ -n ${AWS_SESSION_TOKEN:-} ]]; then export AWS_SESSION_TOKEN; fi
  restorable__aws_env
  restorable_s3_small_client >/dev/null
}

# The AWS CLI gets its own config (nothing from ~/.aws, no instance metadata lookups).
restorable__aws_env() {
  local cfg="$RESTORABLE_RUN_DIR/aws.config"
  {
    printf '[default]\n'
    printf 's3 =\n  addressing_style = %s\n' "${RESTORABLE_S3_ADDRESSING_STYLE:-auto}"
  } >"$cfg"
  export AWS_CONFIG_FILE=$cfg AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
  export AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=${AWS_MAX_ATTEMPTS:-4} AWS_PAGER=
  export AWS_DEFAULT_REGION=$RESTORABLE_REGION
}

# ------------------------------------------------------------------------------------------ S3

# restorable_aws ARGS...: the AWS CLI against the configured endpoint and region.
restorable_aws() {
  aws --endpoint-url "$RESTORABLE_ENDPOINT" --region "$RESTORABLE_REGION" --cli-connect-timeout 15 "$@"
}

# restorable_s3_url KEY: s3://bucket/key
restorable_s3_url() { printf 's3://%s/%s' "$RESTORABLE_BUCKET" "$1"; }

# Small requests (the preflight listing, manifests, the roles) go through curl's SigV4 signing:
# an AWS CLI start costs about half a second of CPU each, which is most of a small backup's time.
# The CLI stays for the streamed multipart uploads. The key reaches curl on a config stream (-K),
# never in argv. curl older than 7.87 (e.g. Ubuntu 22.04's 7.81) cannot sign a payload hash it is
# given, so there the AWS CLI does these requests too (RESTORABLE_S3_SMALL_CLIENT=aws|curl forces one).

# restorable_s3_small_client: curl or aws (see above); sets RESTORABLE_S3_SMALL_CLIENT once.
restorable_s3_small_client() {
  if [[ -z ${RESTORABLE_S3_SMALL_CLIENT:-} ]]; then
    local v major minor
    v=$(curl --version 2>/dev/null | head -n1 | cut -d' ' -f2) || v=
    IFS=. read -r major minor _ <<<"$v"
    if [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] && ((major > 7 || (major == 7 && minor >= 87))); then
      RESTORABLE_S3_SMALL_CLIENT=curl
    else
      RESTORABLE_S3_SMALL_CLIENT=aws
    fi
  fi
  printf '%s' "$RESTORABLE_S3_SMALL_CLIENT"
}

RESTORABLE_EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# restorable_urlencode STRING [KEEP]: percent-encode every byte but A-Za-z0-9._~- (and those in KEEP).
restorable_urlencode() {
  local s=$1 keep=${2:-} out='' c i
  local LC_ALL=C
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    if [[ $c == [A-Za-z0-9._~-] || (-n $keep && $keep == *"$c"*) ]]; then
      out+=$c
    else
      printf -v c '%%%02X' "'$c"
      out+=$c
    fi
  done
  printf '%s' "$out"
}

# restorable_s3_http_url KEY: the object's URL (KEY "" = the bucket): path style for generic
# S3-compatible stores (and IP endpoints, dotted bucket names), virtual-hosted otherwise.
restorable_s3_http_url() {
  local key=$1 ep=${RESTORABLE_ENDPOINT%/} path
  path=$(restorable_urlencode "$key" /)
  if [[ ${RESTORABLE_S3_ADDRESSING_STYLE:-auto} == path || $RESTORABLE_BUCKET == *.* ||
    $ep =~ ^https?://([0-9.]+|\[[0-9a-fA-F:]+\]|localhost)(:[0-9]+)?$ ]]; then
    printf '%s/%s%s' "$ep" "$RESTORABLE_BUCKET" "${key:+/$path}"
  else
    printf '%s://%s.%s/%s' "${ep%%://*}" "$RESTORABLE_BUCKET" "${ep#*://}" "$path"
  fi
}

restorable__curl_auth() {
  local id=${AWS_ACCESS_KEY_ID//\\/\\\\} secret=${AWS_SECRET_ACCESS_KEY//\\/\\\\}
  printf 'user = "%s:%s"\n' "${id//\"/\\\"}" "${secret//\"/\\\"}"
  if [[ -n ${AWS_SESSION_TOKEN:-} ]]; then printf 'header = "x-amz-security-token: %s"\n' "${AWS_SESSION_TOKEN//\"/\\\"}"; fi
}

# restorable_s3_request METHOD KEY QUERY PAYLOAD_SHA256 BODY_OUT [CURL_ARGS...]: one signed S3
# request. Writes the response body to BODY_OUT. Non-zero with one line on stderr (curl's error,
# or "HTTP <status> <S3 error code>: <message>") unless the answer is 2xx.
restorable_s3_request() {
  local method=$1 key=$2 query=$3 sha=$4 out=$5 url status
  shift 5
  url=$(restorable_s3_http_url "$key")${query:+?$query}
  if ! status=$(curl -sS --connect-timeout 15 --max-time 300 --retry 2 --retry-connrefused --retry-delay 1 \
    -K <(restorable__curl_auth) --aws-sigv4 "aws:amz:$RESTORABLE_REGION:s3" \
    -H "x-amz-content-sha256: $sha" -X "$method" -o "$out" -w '%{http_code}' "$@" "$url"); then
    return 1
  fi
  if [[ $status != 2?? ]]; then
    local code msg
    code=$(grep -o '<Code>[^<]*</Code>' "$out" 2>/dev/null | head -n1 | sed 's/<[^>]*>//g') || true
    msg=$(grep -o '<Message>[^<]*</Message>' "$out" 2>/dev/null | head -n1 | sed 's/<[^>]*>//g') || true
    echo "HTTP $status${code:+ $code}${msg:+: $msg} ($method $(restorable_s3_url "$key"))" >&2
    return 1
  fi
}

# restorable_s3_list PREFIX: every key under PREFIX, one per line (ListObjectsV2, all pages).
restorable_s3_list() {
  local prefix=$1 token='' query body="$RESTORABLE_RUN_DIR/list.$BASHPID.xml"
  if [[ $(restorable_s3_small_client) == aws ]]; then
    restorable__aws_list "$prefix"
    return
  fi
  while :; do
    query=
    if [[ -n $token ]]; then query="continuation-token=$(restorable_urlencode "$token")&"; fi
    query+="list-type=2&prefix=$(restorable_urlencode "$prefix")"
    restorable_s3_request GET "" "$query" "$RESTORABLE_EMPTY_SHA256" "$body" || return 1
    grep -o '<Key>[^<]*</Key>' "$body" | sed 's/<[^>]*>//g; s/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&apos;/'"'"'/g; s/&amp;/\&/g' || true
    if ! grep -q '<IsTruncated>true</IsTruncated>' "$body"; then break; fi
    token=$(grep -o '<NextContinuationToken>[^<]*</NextContinuationToken>' "$body" | sed 's/<[^>]*>//g; s/&amp;/\&/g')
    [[ -n $token ]] || break
  done
  rm -f -- "$body"
}

restorable__aws_list() {
  local out err="$RESTORABLE_RUN_DIR/aws-list.$BASHPID.err" code k
  local -a list=(s3api list-objects-v2 --bucket "$RESTORABLE_BUCKET" --prefix "$1")
  if ! out=$(restorable_aws "${list[@]}" --query 'Contents[].Key' --output text 2>"$err"); then
    # AWS CLI 2.9 hides the code of S3 errors without a message (Ceph RGW sends those): ask again with --debug.
    if grep -q "argument of type 'NoneType' is not iterable" "$err" && code=$(restorable_aws_error_code "${list[@]}"); then
      echo "HTTP $code (GET $(restorable_s3_url "$1"))" >"$err"
    fi
    cat "$err" >&2
    rm -f -- "$err"
    return 1
  fi
  rm -f -- "$err"
  for k in $out; do
    if [[ $k != None ]]; then printf '%s\n' "$k"; fi
  done
}

# restorable_aws_error_code ARGS...: repeat a read-only AWS CLI call with --debug and print the
# HTTP status and S3 error code of its last response ("404 NoSuchBucket"). Only those are kept;
# the debug output (request headers, no secret key) is deleted at once.
restorable_aws_error_code() {
  local dbg="$RESTORABLE_RUN_DIR/aws-debug.$BASHPID" code status
  restorable_aws --debug "$@" >/dev/null 2>"$dbg" || true
  code=$(grep -o '<Code>[A-Za-z0-9.]*</Code>' "$dbg" | tail -n1 | sed 's/<[^>]*>//g') || true
  status=$(grep -oE '" [0-9]{3} [0-9]+$' "$dbg" | tail -n1 | cut -d' ' -f2) || true
  rm -f -- "$dbg"
  [[ -n $code ]] || return 1
  printf '%s %s' "${status:-?}" "$code"
}

# restorable_s3_put_text KEY CONTENT_TYPE CONTENT: upload a small text object (manifests, reports).
restorable_s3_put_text() {
  local key=$1 type=$2 content=$3
  if [[ $(restorable_s3_small_client) == aws ]]; then
    printf '%s' "$content" | restorable_aws s3 cp - "$(restorable_s3_url "$key")" --content-type "$type" --only-show-errors --no-progress
    return
  fi
  printf '%s' "$content" | restorable__s3_put "$key" "$type"
}

# restorable_s3_object_size KEY: the stored object's size in bytes (one HEAD request).
restorable_s3_object_size() {
  local out="$RESTORABLE_RUN_DIR/head.$BASHPID" size
  if [[ $(restorable_s3_small_client) == aws ]]; then
    restorable_aws s3api head-object --bucket "$RESTORABLE_BUCKET" --key "$1" --query ContentLength --output text
    return
  fi
  restorable_s3_request HEAD "$1" "" "$RESTORABLE_EMPTY_SHA256" "$out" --head || { rm -f -- "$out"; return 1; }
  size=$(tr -d '\r' <"$out" | sed -n 's/^[Cc]ontent-[Ll]ength: *\([0-9][0-9]*\)$/\1/p' | tail -n 1)
  rm -f -- "$out"
  [[ -n $size ]] || { echo "no Content-Length in the HEAD answer for $(restorable_s3_url "$1")" >&2; return 1; }
  printf '%s\n' "$size"
}

# restorable_s3_put_stdin KEY: upload stdin as one object with one signed PUT (held in memory to
# send its length and digests: only for small streams, such as the roles).
restorable_s3_put_stdin() {
  if [[ $(restorable_s3_small_client) == aws ]]; then
    restorable_aws s3 cp - "$(restorable_s3_url "$1")" --only-show-errors --no-progress
    return
  fi
  restorable__s3_put "$1" application/octet-stream
}

# restorable__s3_put KEY CONTENT_TYPE: one signed PUT of stdin with its sha256 signed and a
# Content-MD5. A bucket with object lock (a default retention) refuses uploads without Content-MD5
# or an x-amz-checksum-* header on AWS; every store checks the bytes against it. (The AWS CLI sends
# Content-MD5 with every PutObject and UploadPart on its own.) The bytes stay in memory (base64).
restorable__s3_put() {
  local key=$1 type=$2 b64 sha hex md5='' i out="$RESTORABLE_RUN_DIR/put.$BASHPID.xml" rc=0
  b64=$(base64 -w0) || return 1
  sha=$(base64 -d <<<"$b64" | sha256sum | cut -d' ' -f1)
  hex=$(base64 -d <<<"$b64" | md5sum | cut -d' ' -f1)
  for ((i = 0; i < ${#hex}; i += 2)); do md5+="\\x${hex:i:2}"; done
  md5=$(printf '%b' "$md5" | base64)
  base64 -d <<<"$b64" | restorable_s3_request PUT "$key" "" "$sha" "$out" \
    -H "Content-Type: $type" -H "Content-MD5: $md5" --data-binary @- || rc=$?
  rm -f -- "$out"
  return "$rc"
}

# restorable_s3_preflight: list the host's three tier prefixes. Proves the endpoint answers, the
# key is valid, the bucket exists and the key may list its prefix, before anything is dumped;
# the restore points seen decide each item's tier (restorable_tier), and the keys seen keep a run
# from overwriting an existing backup (same stamp). The listings are small: lifecycle rules bound
# what a tier holds. A failed listing fails the run (stage preflight): the tier is never guessed.
declare -A RESTORABLE_EXISTING_KEYS=()
restorable_s3_preflight() {
  local tier prefix k
  RESTORABLE_STAGE=preflight
  : >"$RESTORABLE_RUN_DIR/existing"
  for tier in monthly weekly daily; do
    prefix="${RESTORABLE_PREFIX}${tier}/"
    if ! restorable_try preflight restorable_s3_list "$prefix" >>"$RESTORABLE_RUN_DIR/existing"; then
      restorable_fail preflight "cannot list $(restorable_s3_url "$prefix") at $RESTORABLE_ENDPOINT (the listing decides the tier): $RESTORABLE_ERROR_REASON"
    fi
  done
  while IFS= read -r k; do
    if [[ -n $k ]]; then RESTORABLE_EXISTING_KEYS[$k]=1; fi
  done <"$RESTORABLE_RUN_DIR/existing"
}

# restorable_preflight TOOL...: restorable_s3_preflight, then the host tools the job needs (and
# age when encrypting to age recipients). Fails the run at stage preflight.
restorable_preflight() {
  local what
  restorable_s3_preflight
  for what in "$@"; do
    if ! command -v "$what" >/dev/null; then restorable_fail preflight "$what is not installed"; fi
  done
  if ((${#RESTORABLE_AGE_RECIPIENTS[@]} > 0)) && ! command -v age >/dev/null; then
    restorable_fail preflight "age is not installed, but encryption to age recipients is configured"
  fi
}

# restorable_item_keys ITEM EXT: the keys of this run's restore point of ITEM (postgres/<database>,
# globals, volumes/<volume>, base/<cluster>), in the tier the bucket calls for (restorable_tier):
# RESTORABLE_ITEM_BASE (<prefix><tier>/ITEM/<stamp>), RESTORABLE_ITEM_KEY (BASE.EXT, plus .age
# when encrypting to age recipients), RESTORABLE_ITEM_AGE ("" or .age) and
# RESTORABLE_ITEM_MANIFEST (BASE.manifest.json). Returns 1, failing stage preflight (the reason in
# RESTORABLE_ERROR_REASON, as restorable_try), when the bucket already has that manifest.
restorable_item_keys() {
  restorable_tier "$1"
  RESTORABLE_ITEM_BASE="${RESTORABLE_PREFIX}${RESTORABLE_TIER}/$1/$RESTORABLE_STAMP"
  RESTORABLE_ITEM_AGE=""
  if ((${#RESTORABLE_AGE_RECIPIENTS[@]} > 0)); then RESTORABLE_ITEM_AGE=.age; fi
  RESTORABLE_ITEM_KEY="$RESTORABLE_ITEM_BASE.$2$RESTORABLE_ITEM_AGE"
  RESTORABLE_ITEM_MANIFEST="$RESTORABLE_ITEM_BASE.manifest.json"
  restorable_try preflight restorable_refuse_existing "$RESTORABLE_ITEM_MANIFEST"
}

# restorable_refuse_existing KEY: non-zero (with a reason on stderr) when the preflight listing
# saw KEY: a backup with this stamp is already in the bucket and must not be overwritten.
restorable_refuse_existing() {
  if [[ -n ${RESTORABLE_EXISTING_KEYS[$1]:-} ]]; then
    echo "$(restorable_s3_url "$1") already exists: a backup with stamp $RESTORABLE_STAMP is already in the bucket" >&2
    return 1
  fi
}

# ------------------------------------------------------------------------------------------ stages

# restorable_try STAGE CMD...: run CMD with its stderr captured. On failure returns non-zero and
# sets RESTORABLE_ERROR_STAGE / RESTORABLE_ERROR_REASON (for jobs that go on with other items).
restorable_try() {
  local stage=$1 rc=0
  shift
  RESTORABLE_STAGE=$stage
  # Per process: a background job (see backup's globals) may run stages at the same time.
  local err="$RESTORABLE_RUN_DIR/stage.$BASHPID.err"
  "$@" 2>"$err" || rc=$?
  if ((rc != 0)); then
    RESTORABLE_ERROR_STAGE=$stage
    RESTORABLE_ERROR_REASON=$(restorable_summarize_err "$err" "$(restorable_status_text "$1" "$rc")")
    return "$rc"
  fi
  return 0
}

# restorable_record_failure LABEL: remember the first failure of a job that continues with its
# other items (RESTORABLE_ERROR_STAGE/REASON from restorable_try or restorable_stream).
RESTORABLE_FIRST_FAILED_STAGE=
RESTORABLE_FIRST_FAILED_REASON=
RESTORABLE_FAILURES=0
restorable_record_failure() {
  local label=$1
  RESTORABLE_FAILURES=$((RESTORABLE_FAILURES + 1))
  restorable_log "$label: failed at stage $RESTORABLE_ERROR_STAGE: $RESTORABLE_ERROR_REASON"
  if [[ -z $RESTORABLE_FIRST_FAILED_STAGE ]]; then
    RESTORABLE_FIRST_FAILED_STAGE=$RESTORABLE_ERROR_STAGE
    RESTORABLE_FIRST_FAILED_REASON="$label: $RESTORABLE_ERROR_REASON"
  fi
}

# restorable_finish: exit 0 (the EXIT handler pings success), or fail with the first recorded failure.
restorable_finish() {
  if ((RESTORABLE_FAILURES > 0)); then
    local more=
    if ((RESTORABLE_FAILURES > 1)); then more=" (and $((RESTORABLE_FAILURES - 1)) more failure(s), see the log)"; fi
    restorable_fail "$RESTORABLE_FIRST_FAILED_STAGE" "$RESTORABLE_FIRST_FAILED_REASON$more"
  fi
  RESTORABLE_STAGE='done'
  restorable_log "done in $(restorable_elapsed)s"
  exit 0   # the EXIT handler pings success
}

# ------------------------------------------------------------------------------------------ stream

# restorable_wide_pipe: when stdout is a pipe, widen it to 1 MiB (F_SETPIPE_SZ, with perl, which
# Debian always has; the default pipe-max-size). A 64 KiB pipe costs two context switches per
# 64 KiB: here a 0.8 GB data directory decompressed into tar took 1.5 s through one, 1.0 s
# through 1 MiB. Nothing happens when stdout is not a pipe or perl is missing.
restorable_wide_pipe() {
  [[ -p /dev/stdout ]] && command -v perl >/dev/null 2>&1 || return 0
  perl -e 'fcntl(STDOUT, 1031, 1048576)' 2>/dev/null || true
}

# restorable_hash_start DIR: the FIFOs DIR/sha.fifo and DIR/size.fifo, read in the background by
# sha256sum and wc -c (a stream's `tee DIR/sha.fifo DIR/size.fifo` feeds them; errors in
# DIR/err.sha, DIR/err.size). RESTORABLE_HASH_SIZE_PID is wc's pid (a progress probe).
restorable_hash_start() {
  mkfifo -- "$1/sha.fifo" "$1/size.fifo"
  sha256sum <"$1/sha.fifo" >"$1/sha" 2>"$1/err.sha" &
  RESTORABLE__HASH_SHA_PID=$!
  wc -c <"$1/size.fifo" >"$1/size" 2>"$1/err.size" &
  RESTORABLE_HASH_SIZE_PID=$!
}
# restorable_hash_finish DIR: after the stream, unblock the readers if tee never opened their
# FIFOs, wait for them, and set RESTORABLE_HASH_SHA256 and RESTORABLE_HASH_SIZE (bytes); returns 1
# when either reader failed or gave no well-formed result.
restorable_hash_finish() {
  local f fd rc=0
  for f in "$1/sha.fifo" "$1/size.fifo"; do
    exec {fd}<>"$f"
    exec {fd}>&-
  done
  wait "$RESTORABLE__HASH_SHA_PID" 2>/dev/null || rc=1
  wait "$RESTORABLE_HASH_SIZE_PID" 2>/dev/null || rc=1
  RESTORABLE_HASH_SHA256=$(cut -d' ' -f1 <"$1/sha" 2>/dev/null || true)
  RESTORABLE_HASH_SIZE=$(tr -d ' \n' <"$1/size" 2>/dev/null || true)
  ((rc == 0)) && [[ $RESTORABLE_HASH_SHA256 =~ ^[0-9a-f]{64}$ && $RESTORABLE_HASH_SIZE =~ ^[0-9]+$ ]]
}

# restorable_stream KEY EXPECTED_SIZE PRODUCER_STAGE PRODUCER_NAME PRODUCER [ARGS...]
# Streams `PRODUCER ARGS | zstd | [age -r ...] | tee (sha256 + byte count) | aws s3 cp - s3://…/KEY`
# with no local copy of the data. Every stage's exit status is checked (PIPESTATUS); the failing
# stage reported is the last one in the pipe that failed (an upstream stage that dies of a broken
# pipe is a consequence, not the cause). `aws s3 cp` checks every part it sends (Content-MD5) and
# exits 0 only after the upload completed; one HEAD request then checks that the bucket holds
# exactly the streamed byte count. The sha256 goes into the manifest, and restore and drill check
# the downloaded bytes against it. On success sets RESTORABLE_STREAM_SHA256 and
# RESTORABLE_STREAM_SIZE; on failure returns 1 with RESTORABLE_ERROR_STAGE/REASON set.
# EXPECTED_SIZE (bytes, an upper bound; 0 = unknown) lets the CLI pick a part size for streams
# over ~80 GB (10,000 parts of 8 MiB). PRODUCER_NAME names the producer in reasons ("pg_dump").
restorable_stream() {
  local key=$1 expected=$2 pstage=$3 pname=$4
  shift 4
  local d
  d=$(mktemp -d "$RESTORABLE_RUN_DIR/stream.XXXXXX")
  restorable_hash_start "$d"
  # Progress from the byte count wc is reading (lib-progress.sh); the roles are too small for it.
  [[ ${RESTORABLE_STREAM_SMALL:-} == 1 ]] || restorable_progress_start "upload $key" 0 rchar "$RESTORABLE_HASH_SIZE_PID" "$d/size"
  # The AWS CLI streams in multipart chunks of bounded memory; a small stream (RESTORABLE_STREAM_SMALL=1,
  # e.g. the roles) is one signed PUT by curl instead, which saves an AWS CLI start.
  local -a upload=(restorable_aws s3 cp - "$(restorable_s3_url "$key")" --only-show-errors --no-progress)
  local uploader="aws s3 cp"
  if [[ $expected =~ ^[0-9]+$ ]] && ((expected > 0)); then upload+=(--expected-size "$expected"); fi
  if [[ ${RESTORABLE_STREAM_SMALL:-} == 1 ]]; then
    upload=(restorable_s3_put_stdin "$key")
    uploader="curl PUT"
  fi
  local -a zstd_args=(-q -c "-${RESTORABLE_ZSTD_LEVEL}" "-T${RESTORABLE_ZSTD_THREADS:-1}")
  local -a st names cmds
  RESTORABLE_STAGE=$pstage
  # The pipe runs as a background child the shell waits for (restorable_run), so that a signal
  # ends it at once: the EXIT handler stops the child with everything it started.
  local -a age_args=() r
  for r in "${RESTORABLE_AGE_RECIPIENTS[@]}"; do age_args+=(-r "$r"); done
  if ((${#age_args[@]} > 0)); then
    names=("$pstage" compress encrypt hash upload)
    cmds=("$pname" zstd age tee "$uploader")
  else
    names=("$pstage" compress hash upload)
    cmds=("$pname" zstd tee "$uploader")
  fi
  restorable_run restorable__stream_pipe "$d" "${#age_args[@]}" "$@" || true
  read -r -a st <"$d/status" 2>/dev/null || st=(1)
  restorable_progress_stop
  local hashed=0
  restorable_hash_finish "$d" || hashed=1
  local i failed=-1
  for ((i = ${#st[@]} - 1; i >= 0; i--)); do
    if ((st[i] != 0)); then failed=$i; break; fi
  done
  if ((failed >= 0)); then
    RESTORABLE_ERROR_STAGE=${names[failed]}
    RESTORABLE_ERROR_REASON="$(restorable_status_text "${cmds[failed]}" "${st[failed]}"): $(restorable_summarize_err "$d/err.$failed" "no error output")"
    RESTORABLE_STAGE=$RESTORABLE_ERROR_STAGE
    return 1
  fi
  RESTORABLE_STREAM_SHA256=$RESTORABLE_HASH_SHA256 RESTORABLE_STREAM_SIZE=$RESTORABLE_HASH_SIZE
  if ((hashed != 0)); then
    RESTORABLE_ERROR_STAGE='hash'
    RESTORABLE_ERROR_REASON="could not hash the stream: $(restorable_summarize_err "$d/err.sha" "sha256sum/wc failed")"
    return 1
  fi
  # The uploader said it is done; the bucket must hold exactly the bytes streamed before a manifest
  # may name them (one HEAD request).
  local stored
  RESTORABLE_STAGE=upload
  if ! stored=$(restorable_s3_object_size "$key" 2>"$d/err.head"); then
    RESTORABLE_ERROR_STAGE=upload
    RESTORABLE_ERROR_REASON="cannot read back the size of $(restorable_s3_url "$key"): $(restorable_summarize_err "$d/err.head" "HEAD failed")"
    return 1
  fi
  if [[ $stored != "$RESTORABLE_STREAM_SIZE" ]]; then
    RESTORABLE_ERROR_STAGE=upload
    RESTORABLE_ERROR_REASON="$(restorable_s3_url "$key") holds $stored bytes, but $RESTORABLE_STREAM_SIZE were streamed"
    return 1
  fi
  rm -rf -- "$d"
  return 0
}

# restorable__stream_pipe DIR AGE_ARGS_COUNT PRODUCER [ARGS...]: restorable_stream's pipe (in its
# child; zstd_args, age_args and upload are restorable_stream's), writing each stage's exit status
# to DIR/status.
restorable__stream_pipe() {
  local d=$1 encrypt=$2
  shift 2
  set +e
  if ((encrypt > 0)); then
    { restorable_wide_pipe; "$@"; } </dev/null 2>"$d/err.0" |
      zstd "${zstd_args[@]}" 2>"$d/err.1" |
      age "${age_args[@]}" 2>"$d/err.2" |
      tee "$d/sha.fifo" "$d/size.fifo" 2>"$d/err.3" |
      "${upload[@]}" >"$d/out.4" 2>"$d/err.4"
  else
    { restorable_wide_pipe; "$@"; } </dev/null 2>"$d/err.0" |
      zstd "${zstd_args[@]}" 2>"$d/err.1" |
      tee "$d/sha.fifo" "$d/size.fifo" 2>"$d/err.2" |
      "${upload[@]}" >"$d/out.3" 2>"$d/err.3"
  fi
  printf '%s\n' "${PIPESTATUS[*]}" >"$d/status"
}

# ------------------------------------------------------------------------------------------ JSON

# restorable_json_str STRING: a JSON string literal.
restorable_json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  s=${s//[[:cntrl:]]/}
  printf '"%s"' "$s"
}

# restorable_json_array ITEMS...: a JSON array of strings.
restorable_json_array() {
  local out='' x
  for x in "$@"; do out+="${out:+,}$(restorable_json_str "$x")"; done
  printf '[%s]' "$out"
}

# restorable_manifest KIND KEY SIZE SHA256 DUMP_FORMAT EXTRA_FIELDS START: the manifest JSON
# (contract). EXTRA_FIELDS is a JSON fragment of kind-specific members ('"database": "app", ...'),
# or empty; START is the $EPOCHREALTIME when this item began (for durationSeconds).
restorable_manifest() {
  local kind=$1 key=$2 size=$3 sha=$4 format=$5 extra=$6 start=${7:-} enc=none
  if ((${#RESTORABLE_AGE_RECIPIENTS[@]} > 0)); then enc=age; fi
  printf '{\n'
  printf '  "format": 1,\n'
  printf '  "kind": %s,\n' "$(restorable_json_str "$kind")"
  printf '  "host": %s,\n' "$(restorable_json_str "$RESTORABLE_HOST")"
  printf '  "tier": %s,\n' "$(restorable_json_str "$RESTORABLE_TIER")"
  printf '  "stamp": %s,\n' "$(restorable_json_str "$RESTORABLE_STAMP")"
  printf '  "createdAt": %s,\n' "$(restorable_json_str "$RESTORABLE_CREATED_AT")"
  if [[ -n $extra ]]; then printf '  %s,\n' "$extra"; fi
  printf '  "dumpFormat": %s,\n' "$(restorable_json_str "$format")"
  printf '  "compression": "zstd",\n'
  printf '  "compressionLevel": %d,\n' "$RESTORABLE_ZSTD_LEVEL"
  printf '  "encryption": %s,\n' "$(restorable_json_str "$enc")"
  if [[ $enc == age ]]; then printf '  "ageRecipients": %s,\n' "$(restorable_json_array "${RESTORABLE_AGE_RECIPIENTS[@]}")"; fi
  printf '  "object": { "key": %s, "size": %d, "sha256": %s },\n' "$(restorable_json_str "$key")" "$size" "$(restorable_json_str "$sha")"
  printf '  "durationSeconds": %s\n' "$(restorable_elapsed "$start")"
  printf '}\n'
}

# ------------------------------------------------------------------------------------------ postgres

# restorable_compose ARGS...: `docker compose` (v2 plugin) or the v1 `docker-compose` binary,
# whichever the host has (RESTORABLE_COMPOSE=v1|v2 forces one).
restorable_compose() {
  if [[ -z ${RESTORABLE_COMPOSE:-} ]]; then restorable_detect_compose; fi
  if [[ $RESTORABLE_COMPOSE == v2 ]]; then
    docker compose "$@"
  else
    docker-compose "$@"
  fi
}

restorable_detect_compose() {
  if [[ -n ${RESTORABLE_COMPOSE:-} ]]; then return 0; fi
  if docker compose version >/dev/null 2>&1; then
    RESTORABLE_COMPOSE=v2
  elif command -v docker-compose >/dev/null 2>&1; then
    RESTORABLE_COMPOSE=v1
  else
    echo "neither 'docker compose' nor 'docker-compose' is installed" >&2
    return 1
  fi
}

# restorable_compose_container PROJECT_DIR SERVICE: the id of the service's one container (running
# or not); on stderr why not, for "compose service SERVICE in PROJECT_DIR: <why>".
restorable_compose_container() {
  local project=$1 service=$2 ids
  restorable_detect_compose || return 1
  if [[ ! -d $project ]]; then
    echo "the project directory does not exist" >&2
    return 1
  fi
  ids=$(cd "$project" && restorable_compose ps -q "$service") || return 1
  ids=$(grep -v '^$' <<<"$ids" || true)
  if [[ -z $ids ]]; then
    echo "no container (is it up?)" >&2
    return 1
  fi
  if [[ $(wc -l <<<"$ids") -ne 1 ]]; then
    echo "several containers" >&2
    return 1
  fi
  printf '%s\n' "$ids"
}

# restorable_pg I TOOL [ARGS...]: run a PostgreSQL client tool (pg_dump, pg_dumpall, psql, ...)
# for postgres source I through its access mode, as its configured user:
#   compose:   (cd PROJECT && docker compose exec -T SERVICE TOOL -U USER ARGS...)
#   container: docker exec -i CONTAINER TOOL -U USER ARGS...
#   local:     TOOL -h HOST -p PORT -U USER ARGS...
# A configured password travels in the environment only (PGPASSWORD; `-e PGPASSWORD` hands the
# client's value to docker without putting it in argv). Runs in a subshell that becomes the tool
# (exec), so its exit status and signals are the tool's own. A caller that runs many short
# queries (the WAL archiver, every few seconds) resolves a compose service's container once
# (restorable_compose_container) and sets RESTORABLE_PG_CID[I]: docker exec then goes straight
# to it, without compose's start-up on every call.
RESTORABLE_PG_CID=()
restorable_pg() (
  local i=$1 tool=$2
  shift 2
  local via=${RESTORABLE_PG_VIA[i]} user=${RESTORABLE_PG_USER[i]} pw=${RESTORABLE_PG_PASSWORD[i]:-}
  local container=${RESTORABLE_PG_CONTAINER[i]:-}
  # RESTORABLE_PG_TIMEOUT=SECONDS (for short queries): killed after that long (exit 124), so a hung
  # docker daemon or server cannot stop a loop that must keep raising its alarm.
  local -a pre=(env)
  if [[ -n ${RESTORABLE_PG_TIMEOUT:-} ]]; then pre=(timeout -k 5 "$RESTORABLE_PG_TIMEOUT"); fi
  if [[ $via == compose && -n ${RESTORABLE_PG_CID[i]:-} ]]; then
    via=container container=${RESTORABLE_PG_CID[i]}
  fi
  local -a envs=()
  if [[ -n $pw ]]; then
    export PGPASSWORD=$pw
    envs=(-e PGPASSWORD)
  fi
  case $via in
    compose)
      cd "${RESTORABLE_PG_PROJECT[i]}" || exit 1
      restorable_detect_compose || exit 1
      if [[ $RESTORABLE_COMPOSE == v2 ]]; then
        exec "${pre[@]}" docker compose exec -T "${envs[@]}" "${RESTORABLE_PG_SERVICE[i]}" "$tool" -U "$user" "$@"
      fi
      exec "${pre[@]}" docker-compose exec -T "${envs[@]}" "${RESTORABLE_PG_SERVICE[i]}" "$tool" -U "$user" "$@"
      ;;
    container)
      exec "${pre[@]}" docker exec -i "${envs[@]}" "$container" "$tool" -U "$user" "$@"
      ;;
    local)
      export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-15}
      exec "${pre[@]}" "$tool" -h "${RESTORABLE_PG_HOST[i]}" -p "${RESTORABLE_PG_PORT[i]}" -U "$user" "$@"
      ;;
    *)
      echo "unknown access mode '$via' for database ${RESTORABLE_PG_DATABASE[i]}" >&2
      exit 2
      ;;
  esac
)

# restorable_pg_describe I: "compose /srv/app service db" etc. (for logs and manifests)
restorable_pg_describe() {
  local i=$1
  case ${RESTORABLE_PG_VIA[i]} in
    compose) printf 'compose %s service %s' "${RESTORABLE_PG_PROJECT[i]}" "${RESTORABLE_PG_SERVICE[i]}" ;;
    container) printf 'container %s' "${RESTORABLE_PG_CONTAINER[i]}" ;;
    local) printf 'local %s:%s' "${RESTORABLE_PG_HOST[i]}" "${RESTORABLE_PG_PORT[i]}" ;;
    *) printf '%s' "${RESTORABLE_PG_VIA[i]}" ;;
  esac
}

# restorable_pg_source_json I: the manifest's "source" object for postgres source I.
restorable_pg_source_json() {
  local i=$1
  local via=${RESTORABLE_PG_VIA[i]} out
  out="{ \"via\": $(restorable_json_str "$via")"
  case $via in
    compose) out+=", \"project\": $(restorable_json_str "${RESTORABLE_PG_PROJECT[i]}"), \"service\": $(restorable_json_str "${RESTORABLE_PG_SERVICE[i]}")" ;;
    container) out+=", \"container\": $(restorable_json_str "${RESTORABLE_PG_CONTAINER[i]}")" ;;
    local) out+=", \"host\": $(restorable_json_str "${RESTORABLE_PG_HOST[i]}"), \"port\": ${RESTORABLE_PG_PORT[i]:-5432}" ;;
  esac
  out+=", \"user\": $(restorable_json_str "${RESTORABLE_PG_USER[i]}") }"
  printf '%s' "$out"
}

# restorable_pg_cluster_id I: identifies the cluster behind source I (sources on one cluster share roles).
restorable_pg_cluster_id() {
  local i=$1
  case ${RESTORABLE_PG_VIA[i]} in
    compose) printf 'compose|%s|%s' "${RESTORABLE_PG_PROJECT[i]}" "${RESTORABLE_PG_SERVICE[i]}" ;;
    container) printf 'container|%s' "${RESTORABLE_PG_CONTAINER[i]}" ;;
    *) printf 'local|%s|%s' "${RESTORABLE_PG_HOST[i]}" "${RESTORABLE_PG_PORT[i]}" ;;
  esac
}

# ------------------------------------------------------------------------------------------ volumes

# The volume listing (backup-volumes records it beside the tarball; restore-drill computes it again
# over the restored throwaway volume and compares): one POSIX sh script, run in a container from
# RESTORABLE_VOLUME_IMAGE over the volume mounted at /data (read-only), needing only find
# -exec {} +, stat -c, od, awk, sha256sum, readlink and sort (busybox has them all). Both sides run
# this same text, so the format is identical by construction. Output (LC_ALL=C, sorted):
#   # restorable volume listing 1: path type mode owner size mtime sha256 target
#   <path> <type> <mode> <uid>:<gid> <size> <mtime> <sha256> <target>
# path (relative to the volume root; the root itself is ".") and target (of a symlink) are the
# names' bytes in lowercase hex, so any name (spaces, quotes, newlines, non-UTF-8) is one token;
# type f d l p c b (sockets are left out: tar cannot archive them); mode 4 octal digits with the
# set-id/sticky bits; size in bytes for f and l, else "-"; mtime in epoch seconds; sha256 for f,
# else "-"; target for l, else "-". Each tool's output is matched to the names it was given by
# position, then by hex name; a file vanishing while it runs fails it (status 1).
# shellcheck disable=SC2016 # expanded by the container's sh
RESTORABLE_VOLUME_LISTING_SH='set -eu
if (set -o pipefail) 2>/dev/null; then set -o pipefail; fi
export LC_ALL=C
cd "${1:-/data}"
t=$(mktemp -d)
trap '\''rm -rf "$t"'\'' EXIT
# hexnames FILE: the NUL-terminated names in FILE as hex, one per line (no pipes: dash has no pipefail).
hexnames() {
  od -An -v -tx1 "$1" >"$1.od"
  awk '\''{ for (i = 1; i <= NF; i++) { if ($i == "00") { print n; n = "" } else n = n $i } }'\'' "$1.od"
}
export T="$t"
# Each batch of names (find -exec {} +, no xargs: busybox 1.35 xargs -0 garbles long inputs) is
# written NUL-separated beside what one tool printed for it, in the same order. readlink ends each
# target with a newline, then a NUL ends the record.
find . -exec sh -c '\''set -e; for f do printf "%s\0" "$f"; done >>"$T/all"; stat -c "%A %a %s %u %g %Y" "$@" >>"$T/all.stat"'\'' sh {} +
find . -type f -exec sh -c '\''set -e; for f do printf "%s\0" "$f"; done >>"$T/files"; sha256sum "$@" >>"$T/files.sha"'\'' sh {} +
find . -type l -exec sh -c '\''set -e; for l do printf "%s\0" "$l" >>"$T/links"; readlink "$l" >>"$T/links.tgt"; printf "\0" >>"$T/links.tgt"; done'\'' sh {} +
touch "$t/all" "$t/all.stat" "$t/files" "$t/files.sha" "$t/links" "$t/links.tgt"
hexnames "$t/all" >"$t/all.hex"
hexnames "$t/files" >"$t/files.hex"
hexnames "$t/links" >"$t/links.hex"
hexnames "$t/links.tgt" >"$t/links.tgt.hex"
echo "# restorable volume listing 1: path type mode owner size mtime sha256 target"
awk -v T="$t" '\''
function strip(h) { return (h == "2e") ? h : substr(h, 5) }   # "./a" -> "a", "." stays
BEGIN {
  # sha256sum prints one line per file; a name with k newlines spans k+1 lines unless the line
  # starts with "\" (GNU escapes such names into one line).
  while ((getline h < (T "/files.hex")) > 0) {
    if ((getline l < (T "/files.sha")) <= 0) { print "sha256sum gave fewer lines than files" > "/dev/stderr"; exit 1 }
    k = 0
    if (substr(l, 1, 1) == "\\") l = substr(l, 2)
    else for (j = 1; j < length(h); j += 2) if (substr(h, j, 2) == "0a") k++
    x = substr(l, 1, 64)
    if (length(x) != 64 || x !~ /^[0-9a-f]+$/) { print "unexpected sha256sum output" > "/dev/stderr"; exit 1 }
    sha[strip(h)] = x
    for (; k > 0; k--) getline l < (T "/files.sha")
  }
  while ((getline h < (T "/links.hex")) > 0) {
    if ((getline g < (T "/links.tgt.hex")) <= 0) g = ""
    sub(/0a$/, "", g)
    tgt[strip(h)] = g
  }
  while ((getline h < (T "/all.hex")) > 0) {
    if ((getline s < (T "/all.stat")) <= 0) { print "stat gave fewer lines than entries" > "/dev/stderr"; exit 1 }
    split(s, a, " ")
    c = substr(a[1], 1, 1); p = strip(h)
    if (c == "-") ty = "f"; else if (c == "s") continue; else ty = c
    size = (ty == "f" || ty == "l") ? a[3] : "-"
    hs = (ty == "f") ? sha[p] : "-"
    if (ty == "f" && hs == "") { print "no sha256 for a file (did it appear while listing?)" > "/dev/stderr"; exit 1 }
    tg = (ty == "l") ? tgt[p] : "-"
    if (ty == "l" && tg == "") tg = "?"
    printf "%s %s %04d %s:%s %s %s %s %s\n", p, ty, a[2] + 0, a[4], a[5], size, a[6], hs, tg
  }
}'\'' >"$t/out"
sort "$t/out"
'

# Textfile metrics for node_exporter (hosts[].metrics.textfileDir).
# shellcheck source=lib-metrics.sh
. "${BASH_SOURCE[0]%/*}/lib-metrics.sh"
# Progress of long streams on a terminal and in the log.
# shellcheck source=lib-progress.sh
. "${BASH_SOURCE[0]%/*}/lib-progress.sh"
