#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# restore-drill — prove that the newest backups restore: the monthly restore drill (cron).
# Installed by restorable as <scriptsDir>/restore-drill.
#
# Usage:
#   restore-drill [--database NAME]... [--volume NAME]... [--runtime docker|local] [--image IMAGE]
#                 [--identity FILE]
#
# First the roles: the newest globals (pg_dumpall --globals-only) restore point is restored into the
# throwaway (find, rpo, download, verify, decrypt, decompress, restore as below), so that each
# database is then restored WITH its owners and privileges: a backup whose roles or grants cannot
# be restored fails the drill. (CREATE TABLESPACE is left out, and databases are restored with
# --no-tablespaces: a throwaway has none of the tablespaces' directories.)
# Then each configured database (RESTORABLE_PG_DATABASE, or the --database ones):
#   find      the newest manifest-backed backup (objects without a manifest are never used)
#   rpo       fail when it is older than the RPO objective (RESTORABLE_RPO_SECONDS)
#   download  the manifest and the object
#   verify    sha256 (and size) of the downloaded bytes against the manifest
#   decrypt   with the age identity (--identity FILE or RESTORABLE_AGE_IDENTITY) when encrypted,
#   decompress  checked on the first bytes, then streamed (no decompressed copy on disk)
#   restore   into a throwaway Postgres (pg_restore --single-transaction --exit-on-error
#             --no-tablespaces, with owners and privileges); any error fails the drill
#   tables    the restored schema.table list must equal the manifest's
#   checks    every RESTORABLE_DRILL_CHECKS statement must return true
#   rto       download + verify + decrypt + restore + checks must fit RESTORABLE_RTO_SECONDS
# Then each configured Docker volume (RESTORABLE_VOLUMES, or the --volume ones; with --database
# only and no --volume, none, and the other way round):
#   find, rpo, download, verify, decrypt, decompress  as for a database
#   restore   the tarball, streamed into `tar -x` in a container from RESTORABLE_VOLUME_IMAGE over a
#             throwaway Docker volume (labelled like the throwaway Postgres, removed afterwards)
#   listing   the listing backup-volumes recorded (named by the manifest; sha256-checked), and the
#             same listing computed over the restored volume
#   compare   entry by entry: the first difference fails the volume naming the path
#             ("path P: mode 0644 in the listing, 0600 restored", "missing", "unexpected"); a
#             backup made before listings existed is extracted and counted: "content not verified"
#   rto       download + verify + restore of the volume, reported per volume (the databases' RTO
#             figures stay their own)
# A host with volumes and no databases has no roles to drill and starts no throwaway Postgres.
# Then one older restore point per database, volume and tier (see below), then each cluster with a
# WAL archive (hosts[].pitr) is recovered to a random second of its restorable window in a throwaway
# server (lib-pitr-restore.sh: stages find, continuity, rpo, recover, wal, target, tables, checks,
# rto; reported in the report's "pitr" with the archive's RPO and the recovery time), then the retention audit: the
# restore points in the bucket against the promise on this date (stage retention).
# Every item (the roles, each database, each volume, each older point, the audit) is reported on
# its own; a failing one never stops the others, and the run fails naming the first failing item
# in that order (databases and volumes in config order).
# The throwaway Postgres (RESTORABLE_DRILL_RUNTIME) is either a container from
# RESTORABLE_DRILL_IMAGE (runtime docker: only the image's initdb/postgres binaries are used, not
# its entrypoint; network none; labelled restorable.drill=<run id>) or an initdb cluster in a temp
# dir run as the postgres OS user (runtime local; unix socket only). It starts in the background
# while the backups are listed and the first one downloads. Everything the drill starts —
# container, cluster, temp dir, child processes — is removed on exit, also on failure or on
# INT/TERM/HUP; what a drill killed with SIGKILL left behind is removed by the next drill of the
# host (containers labelled restorable.host=<host>, temp dirs marked with the host).
#
# The report (JSON: what was tested, durations, RPO/RTO achieved vs target, each check, result
# and the failing stage) goes to <host>/drills/<stamp>.json in the bucket and to
# $RESTORABLE_STATE_DIR/drills/<stamp>.json — also when the drill fails (then best effort).
# Pings: <url>/start, <url> on success, <url>/fail with the log tail.
#
# Environment: RESTORABLE_CONFIG (path of restorable.conf), RESTORABLE_NOW (clock: RPO age and
# report stamp), RESTORABLE_AGE_IDENTITY, RESTORABLE_DRILL_PGBIN (bin dir for runtime local),
# TMPDIR (where downloads are staged).
#
# Exit codes: 0 the drill passed; 1 it failed (one line on stderr: "restorable restore-drill:
# FAILED at stage <stage>: <reason>"; stages: find, rpo, throwaway, download, verify, decrypt,
# decompress, restore, tables, checks, listing, compare, rto, report); 2 usage or configuration error; 3 another
# drill holds the lock.
set -euo pipefail

RESTORABLE_SCRIPT=restore-drill
RESTORABLE_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# lib.sh: the shared library (signed S3 requests); lib-restore.sh: restore and drill helpers.
# shellcheck source=lib.sh
. "$RESTORABLE_HERE/lib.sh"
# shellcheck source=lib-restore.sh
. "$RESTORABLE_HERE/lib-restore.sh"
# shellcheck source=lib-pitr.sh
. "$RESTORABLE_HERE/lib-pitr.sh"
# shellcheck source=lib-pitr-restore.sh
. "$RESTORABLE_HERE/lib-pitr-restore.sh"

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

only=() only_volumes=() runtime="" image="" identity=""
restorable_traps
RESTORABLE_METRICS_JOB=restore-drill
while (($#)); do
  case $1 in
    -h | --help) usage || true; exit 0 ;;
    --database) [[ $# -ge 2 ]] || restorable_usage "--database needs a name"; restorable_check_name pg --database "$2"; only+=("$2"); shift ;;
    --volume) [[ $# -ge 2 ]] || restorable_usage "--volume needs a name"; restorable_check_name docker --volume "$2"; only_volumes+=("$2"); shift ;;
    --runtime) [[ $# -ge 2 ]] || restorable_usage "--runtime needs docker or local"; runtime=$2; shift ;;
    --image) [[ $# -ge 2 ]] || restorable_usage "--image needs an image"; image=$2; shift ;;
    --identity) [[ $# -ge 2 ]] || restorable_usage "--identity needs a file"; identity=$2; shift ;;
    *) restorable_usage "unknown argument: $1" ;;
  esac
  shift
done

restorable_load_config
restorable_load_credentials optional
runtime=${runtime:-$RESTORABLE_DRILL_RUNTIME}
image=${image:-$RESTORABLE_DRILL_IMAGE}
identity=${identity:-$RESTORABLE_AGE_IDENTITY}
[[ $runtime == docker || $runtime == local ]] || restorable_usage "runtime must be docker or local, not \"$runtime\""
databases=("${RESTORABLE_PG_DATABASE[@]}")
if ((${#only[@]})); then
  for d in "${only[@]}"; do
    printf '%s\n' "${databases[@]}" | grep -qxF -- "$d" || restorable_usage "database $d is not configured on $RESTORABLE_HOST"
  done
  databases=("${only[@]}")
fi
volumes=("${RESTORABLE_VOLUMES[@]}")
if ((${#only_volumes[@]})); then
  for v in "${only_volumes[@]}"; do
    printf '%s\n' "${volumes[@]}" | grep -qxF -- "$v" || restorable_usage "volume $v is not configured on $RESTORABLE_HOST"
  done
  volumes=("${only_volumes[@]}")
  ((${#only[@]})) || databases=()
elif ((${#only[@]})); then
  volumes=()
fi

restorable_tmp_init
restorable_lock restore-drill
printf '%s\n' "$RESTORABLE_HOST" >"$RESTORABLE_TMP/host"
restorable_throwaway_reap
started_epoch=$(restorable_now)
started_at=$(restorable_iso "$started_epoch")
stamp=$(restorable_stamp "$started_epoch")
RESTORABLE_RUN_ID="$stamp-$$"
t_run=$(restorable_realtime)
setup_seconds=null
report_key="${RESTORABLE_PREFIX}drills/$stamp.json"
report_file="$RESTORABLE_STATE_DIR/drills/$stamp.json"
declare -A db_result=()   # database -> its JSON result (the report lists them in config order)
declare -A vol_result=()  # volume -> its JSON result (likewise)
restorable_ping start
restorable_log "drill $RESTORABLE_RUN_ID of ${#databases[@]} database(s) and ${#volumes[@]} volume(s) on $RESTORABLE_HOST, runtime $runtime$([[ $runtime == docker ]] && printf ' (%s)' "$image")"

# ---- report (also written on failure: a failed drill is evidence too) -----------------------------

# shellcheck disable=SC2317,SC2034 # called by the EXIT handler in lib.sh (a failure recorded here fails the run)
restorable_on_finish() {
  local rc=$1 result=pass failure=null checks_json
  if [[ $rc -ne 0 ]]; then
    result=fail
    failure=$(jq -cn --arg stage "${RESTORABLE_FAIL_STAGE:-$RESTORABLE_STAGE}" --arg reason "$RESTORABLE_FAIL_REASON" '{stage: $stage, reason: $reason}')
  fi
  checks_json=$(printf '%s\n' "${RESTORABLE_DRILL_CHECKS[@]}" | jq -R . | jq -cs 'map(select(. != ""))')
  mkdir -p "$RESTORABLE_STATE_DIR/drills" 2>/dev/null || true
  local d results=() vols_json
  for d in "${databases[@]}"; do if [[ -n ${db_result[$d]:-} ]]; then results+=("${db_result[$d]}"); fi; done
  vols_json=$(for d in "${volumes[@]}"; do if [[ -n ${vol_result[$d]:-} ]]; then printf '%s\n' "${vol_result[$d]}"; fi; done | jq -cs .) || vols_json="[]"
  if ! printf '%s\n' "${results[@]}" | jq -s \
    --arg host "$RESTORABLE_HOST" --arg startedAt "$started_at" --arg finishedAt "$(restorable_iso "$(restorable_now_since "$started_epoch")")" \
    --arg runtime "$runtime" --arg image "$image" --arg runId "$RESTORABLE_RUN_ID" --arg bucket "$RESTORABLE_BUCKET" \
    --arg reportKey "$report_key" --argjson durationSeconds "$(restorable_elapsed "$t_run")" --argjson setupSeconds "$setup_seconds" \
    --argjson rpo "$RESTORABLE_RPO_SECONDS" --argjson rto "$RESTORABLE_RTO_SECONDS" --argjson checks "$checks_json" \
    --arg result "$result" --argjson failure "$failure" --argjson globals "${globals_result:-null}" \
    --argjson older "$(printf '%s\n' "${older_results[@]}" | jq -cs 'map(select(. != null))')" \
    --argjson pitr "$(printf '%s\n' "${pitr_results[@]}" | jq -cs 'map(select(. != null))')" --argjson retention "${retention_result:-null}" --argjson volumes "$vols_json" '
    {format: 1, kind: "restore-drill", host: $host, runId: $runId, startedAt: $startedAt, finishedAt: $finishedAt,
     durationSeconds: $durationSeconds, bucket: $bucket, reportKey: $reportKey,
     throwaway: {runtime: $runtime, image: (if $runtime == "docker" then $image else null end), setupSeconds: $setupSeconds},
     objectives: {rpoSeconds: $rpo, rtoSeconds: $rto}, checks: $checks, globals: $globals,
     databases: map(select(. != null)), volumes: $volumes, olderPoints: $older, pitr: $pitr, retention: $retention, result: $result, failure: $failure}' >"$report_file.tmp" 2>/dev/null; then
    restorable_log "could not write the drill report"
    return 0
  fi
  mv -f "$report_file.tmp" "$report_file"
  RESTORABLE_METRICS_REPORT=$report_file
  local err
  err=$(mktemp)
  if restorable_s3_put_text "$report_key" application/json "$(cat "$report_file")" 2>"$err"; then
    restorable_log "report: s3://$RESTORABLE_BUCKET/$report_key ($result)"
  elif [[ $rc -eq 0 ]]; then
    RESTORABLE_FAIL_STAGE=report RESTORABLE_FAIL_REASON="cannot upload the report to s3://$RESTORABLE_BUCKET/$report_key: $(restorable_last_line "$err")"
    rm -f "$err"
    return 0
  else
    restorable_log "could not upload the report (best effort on a failed drill): $(restorable_last_line "$err")"
  fi
  rm -f "$err"
}
# finishedAt follows RESTORABLE_NOW when it is set (so reports of test runs are coherent).
# shellcheck disable=SC2317
restorable_now_since() { awk -v s="$1" -v e="$(restorable_elapsed "$t_run")" 'BEGIN { printf "%d\n", s + e }'; }

# ---- find + rpo for every database, while the throwaway Postgres starts in the background ----------
# A database without a usable restore point is reported (failing the run) and the others are
# still drilled; when none has one, the throwaway is removed again before anything is restored.

restorable_stage find
((${#databases[@]} + ${#volumes[@]} > 0)) || restorable_die "no postgres databases and no volumes are configured on $RESTORABLE_HOST: nothing to drill"
if ((${#databases[@]})); then restorable_throwaway_start "$runtime" "$image"; fi
restorable_list_bucket "$RESTORABLE_TMP/work/listing.jsonl"
restorable_restore_points "$RESTORABLE_TMP/work/listing.jsonl" >"$RESTORABLE_TMP/work/points.tsv"
now=$(restorable_now)
declare -A pick_manifest=() pick_stamp=() pick_tier=() pick_object=() pick_size=() pitr_rpo=()
todo=()   # the databases that have a restore point within the RPO, in config order
older_results=()   # one JSON result per older restore point drilled
retention_result=""   # the retention audit's JSON
# drill_find KIND NAME KEY: the one way an item's newest restore point is picked (KIND globals,
# postgres or volume; NAME "-" for the roles): into pick_*[KEY], with its RPO judged (with PITR
# the WAL archive's, for the roles and the databases: lib-pitr.sh). Returns 0 when there is one
# within the RPO; 1 otherwise, with FIND_STAGE (find | rpo) and FIND_REASON. FIND_AGE: its age.
FIND_STAGE="" FIND_REASON="" FIND_AGE=""
drill_find() {
  local kind=$1 name=$2 key=$3 point tier s mkey okey osize what rwhat label
  case $kind in
    globals) what="the roles (globals)" rwhat="the roles" label=roles ;;
    postgres) what="database $name" rwhat=$name label=$name ;;
    *) what="volume $name" rwhat="volume $name" label="volume $name" ;;
  esac
  FIND_STAGE=find FIND_REASON="" FIND_AGE=""
  point=$(restorable_pick "$RESTORABLE_TMP/work/points.tsv" "$kind" "$name")
  if [[ -z $point ]]; then
    FIND_REASON="no manifest-backed backup of $what under s3://$RESTORABLE_BUCKET/$RESTORABLE_PREFIX"
    restorable_log "$label: $FIND_REASON"
    return 1
  fi
  IFS=$'\t' read -r _ _ tier s mkey okey osize <<<"$point"
  pick_manifest[$key]=$mkey pick_stamp[$key]=$s pick_tier[$key]=$tier pick_object[$key]=$okey pick_size[$key]=$osize
  FIND_STAGE=rpo FIND_AGE=$((now - $(restorable_stamp_epoch "$s")))
  FIND_REASON="the newest backup of $rwhat ($s, $tier) is $(restorable_human_age "$FIND_AGE") old, older than the RPO objective of $(restorable_human_age "$RESTORABLE_RPO_SECONDS")"
  case $kind in
    globals) # the roles live in the archived cluster too
      if ((${#RESTORABLE_PITR_CLUSTER[@]} > 0)) && restorable_pitr_rpo "${RESTORABLE_PG_DATABASE[${RESTORABLE_PITR_SOURCE[0]}]}"; then FIND_AGE=$PITR_RPO_AGE; fi ;;
    postgres) # the WAL archive, not the dump, meets the RPO
      if restorable_pitr_rpo "$name"; then
        FIND_AGE=$PITR_RPO_AGE pitr_rpo[$name]=$PITR_RPO_AGE
        FIND_REASON="$PITR_RPO_TEXT, more than the RPO objective of $(restorable_human_age "$RESTORABLE_RPO_SECONDS")"
        restorable_log "$name: RPO from the WAL archive: $PITR_RPO_TEXT"
      fi ;;
  esac
  if ((FIND_AGE > RESTORABLE_RPO_SECONDS)); then
    restorable_log "$label: $FIND_REASON"
    return 1
  fi
  FIND_STAGE="" FIND_REASON=""
  restorable_log "$label: newest backup $s ($tier), $(restorable_human_age "$FIND_AGE") old"
}
# drill_find_failure KEY: the JSON result of an item drill_find found no usable point for.
drill_find_failure() {
  if [[ $FIND_STAGE == find ]]; then
    jq -cn --arg r "$FIND_REASON" '{result: "fail", failure: {stage: "find", reason: $r}}'
  else
    jq -cn --arg s "${pick_stamp[$1]}" --arg t "${pick_tier[$1]}" --arg m "${pick_manifest[$1]}" --arg r "$FIND_REASON" \
      --argjson a "$FIND_AGE" --argjson tg "$RESTORABLE_RPO_SECONDS" \
      '{stamp: $s, tier: $t, manifestKey: $m, rpo: {achievedSeconds: $a, targetSeconds: $tg, ok: false}, result: "fail", failure: {stage: "rpo", reason: $r}}'
  fi
}
# The roles: one item, keyed ":globals" in the maps (no database name starts with ":").
globals_result="" globals_todo=0
if ((${#databases[@]})); then
  if drill_find globals - :globals; then globals_todo=1; else globals_result=$(drill_find_failure :globals); fi
fi
for db in "${databases[@]}"; do
  if drill_find postgres "$db" "$db"; then
    todo+=("$db")
  else
    db_result[$db]=$(drill_find_failure "$db" | jq -c --arg d "$db" '{database: $d} + .')
    unset 'pick_manifest[$db]'
  fi
done
# drill_fail_first: fail the run with the first failing item's stage and reason (the roles, then
# the databases and the volumes in config order, the older points, the audit).
drill_fail_first() {
  local r f
  for r in "$globals_result" "${databases[@]/#/:db:}" "${volumes[@]/#/:vol:}" "${older_results[@]}" "${pitr_results[@]}" "$retention_result"; do
    if [[ $r == :db:* ]]; then r=${db_result[${r#:db:}]:-}; fi
    if [[ $r == :vol:* ]]; then r=${vol_result[${r#:vol:}]:-}; fi
    f=$(jq -r 'select(.result != "pass") | .failure | "\(.stage)\t\(.reason | gsub("[\t\n]"; " "))"' <<<"$r")
    if [[ -n $f ]]; then
      IFS=$'\t' read -r RESTORABLE_STAGE f <<<"$f"
      restorable_die "$f"
    fi
  done
}
# Nothing to restore into the throwaway Postgres: remove it again (the volumes are drilled all the same).
drill_pg=$((${#todo[@]} + globals_todo > 0))
if ((!drill_pg && ${#databases[@]})); then restorable_throwaway_down; fi

# ---- the roles and the first restore point download while the throwaway finishes starting ---------

for db in "${todo[@]}"; do mkdir -m 0700 "$RESTORABLE_TMP/work/db-$db"; done
mkdir -m 0700 "$RESTORABLE_TMP/work/globals"
if ((globals_todo)); then
  restorable_prefetch_point "${pick_manifest[:globals]}" "${pick_object[:globals]}" "${pick_size[:globals]}" "$RESTORABLE_TMP/work/globals"
fi
if ((${#todo[@]})); then
  db=${todo[0]}
  restorable_prefetch_point "${pick_manifest[$db]}" "${pick_object[$db]}" "${pick_size[$db]}" "$RESTORABLE_TMP/work/db-$db"
fi
if ((drill_pg)); then
  restorable_stage throwaway
  restorable_throwaway_ready
  setup_seconds=$RESTORABLE_THROWAWAY_SECONDS
  restorable_log "throwaway Postgres up in $setup_seconds s: $RESTORABLE_T_DESC"
fi

# ---- each database, in a child (so that one failure does not stop the others, and a signal stops
# ---- everything at once) --------------------------------------------------------------------------

# drill_item_end RC [PREFIX]: the start of every item child's EXIT handler: stop its background
# downloads and set item_result (pass | fail) and item_failure (JSON {stage, reason} or null) from
# its exit status and the failure it recorded (PREFIX: prepended to the reason when missing).
# shellcheck disable=SC2317 # called from the items' EXIT traps
drill_item_end() {
  local rc=$1 prefix=${2:-}
  trap - EXIT
  set +e
  restorable_bg_stop_all
  item_result=pass item_failure=null
  if [[ $rc -ne 0 ]]; then
    item_result=fail
    [[ -n $RESTORABLE_FAIL_REASON ]] || RESTORABLE_FAIL_REASON="unexpected error${RESTORABLE_LAST_ERR:+ at $RESTORABLE_LAST_ERR}"
    [[ -z $prefix || $RESTORABLE_FAIL_REASON == "$prefix"* ]] || RESTORABLE_FAIL_REASON="$prefix$RESTORABLE_FAIL_REASON"
    item_failure=$(jq -cn --arg stage "${RESTORABLE_FAIL_STAGE:-$RESTORABLE_STAGE}" --arg reason "$RESTORABLE_FAIL_REASON" '{stage: $stage, reason: $reason}')
  fi
}

# drill_one DB KEY MODE OUT: runs in a subshell with set -e; writes its JSON result to OUT on any
# exit. KEY picks the restore point in pick_* (the database itself for the newest; "DB@TIER" for an
# older one). MODE newest: RPO and RTO are judged; older: the throwaway's database DB is dropped
# first (the newest was restored into it), and no RPO/RTO (the RTO stays the newest restore's).
# shellcheck disable=SC2317 # invoked through drill_child
drill_one() {
  local db=$1 key=$2 mode=$3 out=$4 dir="$RESTORABLE_TMP/work/db-$2"
  local sha_ok=null restore_ok=null tables_ok=null checks="[]" rto=null tables_detail=null durations="{}"
  local rpo_age
  RESTORABLE_FAIL_STAGE="" RESTORABLE_FAIL_REASON=""
  # shellcheck disable=SC2317 # invoked by the trap
  db_exit() {
    local rc=$? item_result item_failure
    drill_item_end "$rc"
    local result=$item_result failure=$item_failure
    jq -cn --arg d "$db" --arg s "${pick_stamp[$key]}" --arg t "${pick_tier[$key]}" --arg m "${pick_manifest[$key]}" --arg mode "$mode" \
      --arg o "${okey:-}" --arg created "${m_created:-}" --argjson size "${m_size:-null}" --arg enc "${m_enc:-}" \
      --argjson sha "$sha_ok" --argjson restore "$restore_ok" --argjson tables "$tables_ok" --argjson td "$tables_detail" \
      --argjson checks "$checks" --argjson rpoa "$rpo_age" --argjson rpot "$RESTORABLE_RPO_SECONDS" --argjson rto "$rto" \
      --argjson rtot "$RESTORABLE_RTO_SECONDS" --argjson durations "$durations" --arg result "$result" --argjson failure "$failure" '
      {database: $d, stamp: $s, tier: $t, manifestKey: $m, objectKey: (if $o == "" then null else $o end),
       createdAt: (if $created == "" then null else $created end), sizeBytes: $size, encryption: (if $enc == "" then null else $enc end),
       sha256Ok: $sha, restoreOk: $restore, tablesOk: $tables, tables: $td, checks: $checks,
       rpo: (if $mode == "older" then null else {achievedSeconds: $rpoa, targetSeconds: $rpot, ok: ($rpoa <= $rpot)} end),
       rto: (if $rto == null then null else {achievedSeconds: $rto, targetSeconds: $rtot, ok: ($rto <= $rtot)} end),
       durations: $durations, result: $result, failure: $failure}' >"$out"
    exit "$rc"
  }
  trap db_exit EXIT
  trap - INT TERM HUP
  # In this child, restorable_die only ends the child; the parent records the failure.
  RESTORABLE_STAGE_FILE="$RESTORABLE_TMP/work/stage"
  local okey="" m_created="" m_size="" m_enc=""
  rpo_age=$((now - $(restorable_stamp_epoch "${pick_stamp[$key]}")))
  # The parent prefetched the restore point into $dir/fetch (while the throwaway started, or
  # while the previous database restored); whatever is missing is downloaded here.
  restorable_fetch_manifest "${pick_manifest[$key]}" postgres "$db" "$dir"
  okey=$RESTORABLE_MF_KEY m_created=$RESTORABLE_MF_CREATED m_size=${RESTORABLE_MF_SIZE:-null} m_enc=$RESTORABLE_MF_ENC
  if [[ -n $m_created ]]; then
    local ce
    ce=$(date -u -d "$m_created" +%s 2>/dev/null) && rpo_age=$((now - ce))
  fi
  if [[ -n ${pitr_rpo[$db]:-} ]]; then rpo_age=${pitr_rpo[$db]}; fi
  sha_ok=false
  restorable_fetch_object "$dir" "$identity"
  sha_ok=true
  durations=$(jq -cn --argjson d "$RESTORABLE_T_DOWNLOAD" --argjson v "$RESTORABLE_T_VERIFY" '{download: $d, verify: $v}')

  restorable_stage restore
  [[ ${RESTORABLE_HEAD:0:5} == PGDMP ]] || restorable_die "$okey is not a pg_dump custom-format archive"
  local t0 err="$dir/restore.err"
  t0=$(restorable_realtime)
  restore_ok=false
  if [[ $mode == older ]]; then
    restorable_sql postgres "DROP DATABASE IF EXISTS $(restorable_sql_ident "$db") WITH (FORCE)" >/dev/null 2>"$err" ||
      restorable_die "cannot drop database $db in the throwaway Postgres: $(restorable_error_line "$err")"
  fi
  restorable_sql postgres "CREATE DATABASE $(restorable_sql_ident "$db") TEMPLATE template0" >/dev/null 2>"$err" ||
    restorable_die "cannot create database $db in the throwaway Postgres: $(restorable_error_line "$err")"
  # Decrypt | decompress | pg_restore, streamed; any error (or error line) fails the drill.
  if ! restorable_restore_throwaway "$dir" "$db" --single-transaction --exit-on-error --no-tablespaces; then
    restorable_log_file_tail "$err" 20
    restorable_die "restoring $okey: $(restorable_decode_into_reason "$dir" pg_restore)"
  fi
  if grep -qi 'error' "$err"; then
    restorable_log_file_tail "$err" 20
    restorable_die "pg_restore of $okey reported: $(grep -m1 -i 'error' "$err" | cut -c1-300)"
  fi
  restore_ok=true
  rm -f -- "$RESTORABLE_OBJ"
  durations=$(jq -c --argjson r "$(restorable_elapsed "$t0")" '. + {restore: $r}' <<<"$durations")

  restorable_stage tables
  t0=$(restorable_realtime)
  tables_ok=false
  restorable_manifest_tables "$RESTORABLE_MF" >"$dir/expected"
  restorable_sql "$db" "$RESTORABLE_TABLES_SQL" >"$dir/actual" 2>"$err" || restorable_die "cannot list the restored tables: $(restorable_error_line "$err")"
  sort -o "$dir/actual" "$dir/actual"
  tables_detail=$(jq -cn --rawfile e "$dir/expected" --rawfile a "$dir/actual" '
    ($e | split("\n") | map(select(. != ""))) as $E | ($a | split("\n") | map(select(. != ""))) as $A
    | {expected: ($E | length), restored: ($A | length), missing: ($E - $A), unexpected: ($A - $E)}')
  local diff_reason
  if ! diff_reason=$(restorable_compare_tables "$dir/expected" "$dir/actual"); then
    restorable_die "restored $db differs from the manifest: $diff_reason"
  fi
  tables_ok=true
  durations=$(jq -c --argjson t "$(restorable_elapsed "$t0")" '. + {tables: $t}' <<<"$durations")

  restorable_stage checks
  local sql outp failed="" i=0
  for sql in "${RESTORABLE_DRILL_CHECKS[@]}"; do
    i=$((i + 1))
    if outp=$(restorable_sql "$db" "$sql" 2>"$err"); then
      if [[ $outp == t ]]; then
        checks=$(jq -c --arg s "$sql" '. + [{sql: $s, ok: true}]' <<<"$checks")
        restorable_log "$db: check $i passed: $sql"
        continue
      fi
      outp=$(printf '%s' "$outp" | head -c 200)
      checks=$(jq -c --arg s "$sql" --arg o "$outp" '. + [{sql: $s, ok: false, output: $o}]' <<<"$checks")
      restorable_log "$db: check $i returned \"$outp\", not true: $sql"
      failed=${failed:-"check $i ($sql) returned \"$outp\", not true"}
    else
      local e1
      e1=$(restorable_error_line "$err")
      checks=$(jq -c --arg s "$sql" --arg e "$e1" '. + [{sql: $s, ok: false, error: $e}]' <<<"$checks")
      restorable_log "$db: check $i failed: $sql: $e1"
      failed=${failed:-"check $i ($sql) failed: $e1"}
    fi
  done
  durations=$(jq -c --argjson c "$(restorable_elapsed "$t0")" '. + {checks: $c}' <<<"$durations")
  [[ -z $failed ]] || restorable_die "$db: $failed"
  if [[ $mode == older ]]; then
    restorable_log "$db: older restore point ${pick_stamp[$key]} (${pick_tier[$key]}) passed"
    exit 0
  fi

  restorable_stage rto
  # RTO achieved: download + verify + decrypt/decompress/restore + table check + SQL checks.
  rto=$(jq -r '[.[]] | add * 1000 | round / 1000' <<<"$durations")
  restorable_rto_check "restoring $db" "$rto" "download + verify + decrypt + restore + checks"
  restorable_log "$db: passed; RPO $(restorable_human_age "$rpo_age") (objective $(restorable_human_age "$RESTORABLE_RPO_SECONDS")), RTO ${rto} s (objective $(restorable_human_age "$RESTORABLE_RTO_SECONDS"))"
  exit 0
}

# drill_globals OUT: the roles into the throwaway, in a subshell like drill_one; JSON result to OUT.
# shellcheck disable=SC2317 # invoked through drill_child
drill_globals() {
  local out=$1 dir="$RESTORABLE_TMP/work/globals"
  local sha_ok=null restore_ok=null roles=null passwords=null durations="{}" rpo_age okey="" m_created="" m_size="" m_enc="" t0
  RESTORABLE_FAIL_STAGE="" RESTORABLE_FAIL_REASON=""
  # shellcheck disable=SC2317 # invoked by the trap
  globals_exit() {
    local rc=$? item_result item_failure
    drill_item_end "$rc"
    local result=$item_result failure=$item_failure
    jq -cn --arg s "${pick_stamp[:globals]}" --arg t "${pick_tier[:globals]}" --arg m "${pick_manifest[:globals]}" \
      --arg o "$okey" --arg created "$m_created" --argjson size "${m_size:-null}" --arg enc "$m_enc" \
      --argjson sha "$sha_ok" --argjson restore "$restore_ok" --argjson roles "$roles" --argjson pw "$passwords" \
      --argjson rpoa "$rpo_age" --argjson rpot "$RESTORABLE_RPO_SECONDS" --argjson durations "$durations" \
      --arg result "$result" --argjson failure "$failure" '
      {stamp: $s, tier: $t, manifestKey: $m, objectKey: (if $o == "" then null else $o end),
       createdAt: (if $created == "" then null else $created end), sizeBytes: $size, encryption: (if $enc == "" then null else $enc end),
       sha256Ok: $sha, restoreOk: $restore, roles: $roles, rolePasswords: $pw,
       rpo: {achievedSeconds: $rpoa, targetSeconds: $rpot, ok: ($rpoa <= $rpot)},
       durations: $durations, result: $result, failure: $failure}' >"$out"
    exit "$rc"
  }
  trap globals_exit EXIT
  trap - INT TERM HUP
  RESTORABLE_STAGE_FILE="$RESTORABLE_TMP/work/stage"
  rpo_age=$((now - $(restorable_stamp_epoch "${pick_stamp[:globals]}")))
  restorable_fetch_manifest "${pick_manifest[:globals]}" globals - "$dir"
  okey=$RESTORABLE_MF_KEY m_created=$RESTORABLE_MF_CREATED m_size=${RESTORABLE_MF_SIZE:-null} m_enc=$RESTORABLE_MF_ENC
  passwords=$(jq -c '.rolePasswords // null' "$RESTORABLE_MF")
  sha_ok=false
  restorable_fetch_object "$dir" "$identity"
  sha_ok=true
  durations=$(jq -cn --argjson d "$RESTORABLE_T_DOWNLOAD" --argjson v "$RESTORABLE_T_VERIFY" '{download: $d, verify: $v}')
  t0=$(restorable_realtime)
  restore_ok=false
  restorable_decode_to "$dir/globals.raw"
  restorable_stage restore
  restorable_globals_sql "$dir/globals.raw" "$dir/globals.sql" drill
  if ! restorable_tgt_run psql postgres -X -q -v ON_ERROR_STOP=1 -f - <"$dir/globals.sql" >"$dir/restore.out" 2>"$dir/restore.err"; then
    restorable_log_file_tail "$dir/restore.err" 20
    restorable_die "restoring the roles from $okey failed: $(restorable_error_line "$dir/restore.err")"
  fi
  restore_ok=true roles=$RESTORABLE_GLOBALS_ROLES
  durations=$(jq -c --argjson r "$(restorable_elapsed "$t0")" '. + {restore: $r}' <<<"$durations")
  restorable_log "roles: passed; $roles role(s) restored into the throwaway$([[ $passwords == false ]] && printf ' (saved without their passwords)')"
  exit 0
}

# drill_child FUNC OUT ARGS...: run one item's drill in a child (set -e active in it: started
# directly, not in a condition; waited for by this shell, so a signal is handled at once) and set
# DRILL_RESULT to its JSON result, or to a failure when it left none.
DRILL_RESULT=""
drill_child() {
  local fn=$1 out=$2 rc=0
  shift 2
  RESTORABLE_CHILD_STAGE_FILE="$RESTORABLE_TMP/work/stage"
  "$fn" "$@" "$out" &
  RESTORABLE_CHILD=$!
  wait "$RESTORABLE_CHILD" || rc=$?
  RESTORABLE_CHILD="" RESTORABLE_CHILD_STAGE_FILE=""
  if [[ -s $out ]]; then
    DRILL_RESULT=$(<"$out")
  else
    DRILL_RESULT=$(jq -cn --arg r "the drill ended with status $rc" '{result: "fail", failure: {stage: "restore", reason: $r}}')
  fi
}

if ((globals_todo)); then
  restorable_stage download
  restorable_prefetch_wait "${pick_manifest[:globals]}" "${pick_object[:globals]}" "$RESTORABLE_TMP/work/globals"
  drill_child drill_globals "$RESTORABLE_TMP/work/result-globals.json"
  globals_result=$DRILL_RESULT
fi
for i in "${!todo[@]}"; do
  db=${todo[$i]}
  restorable_stage download
  restorable_prefetch_wait "${pick_manifest[$db]}" "${pick_object[$db]}" "$RESTORABLE_TMP/work/db-$db"
  next=${todo[$((i + 1))]:-}
  if [[ -n $next ]]; then restorable_prefetch_point "${pick_manifest[$next]}" "${pick_object[$next]}" "${pick_size[$next]}" "$RESTORABLE_TMP/work/db-$next"; fi
  drill_child drill_one "$RESTORABLE_TMP/work/result-$db.json" "$db" "$db" newest
  db_result[$db]=$(jq -c --arg d "$db" '{database: $d} + .' <<<"$DRILL_RESULT")
done

# ---- volumes: each against the listing recorded at backup time, in a child each (like the
# ---- databases: one failure does not stop the others); helpers in lib-restore.sh "volumes" ------

# drill_volume VOLUME N KEY MODE OUT: runs in a subshell with set -e; writes its JSON result to OUT
# on any exit. N names its scratch dir and throwaway volume. MODE newest: the newest restore point
# is picked here (drill_find, into pick_*[KEY]) and RPO and RTO are judged; older: the one the
# parent put in pick_*[KEY], no RPO/RTO (the RTO stays the newest restore's).
# shellcheck disable=SC2317 # invoked through drill_child
drill_volume() {
  local vol=$1 n=$2 key=$3 mode=$4 out=$5 dir="$RESTORABLE_TMP/work/vol-$2" tvol="restorable-drill-$RESTORABLE_RUN_ID-v$2"
  local point="" tier="" s="" mkey="" okey="" m_created="" m_size="" m_enc="" rpo_age=null rto=null
  local sha_ok=null content=false note="" listed=null restored=null durations="{}" t0
  RESTORABLE_FAIL_STAGE="" RESTORABLE_FAIL_REASON="" RESTORABLE_VOL_LKEY="" RESTORABLE_VOL_LENTRIES=""
  # shellcheck disable=SC2317 # invoked by the trap
  vol_exit() {
    local rc=$? item_result item_failure
    drill_item_end "$rc" "volume $vol: "
    restorable_vol_remove "$tvol"
    rm -rf -- "$dir"
    local result=$item_result failure=$item_failure
    jq -cn --arg v "$vol" --arg s "$s" --arg t "$tier" --arg m "$mkey" --arg o "$okey" --arg l "$RESTORABLE_VOL_LKEY" \
      --arg created "$m_created" --argjson size "${m_size:-null}" --arg enc "$m_enc" --argjson sha "$sha_ok" \
      --argjson content "$content" --arg note "$note" --argjson listed "$listed" --argjson restored "$restored" \
      --argjson rpoa "$rpo_age" --argjson rpot "$RESTORABLE_RPO_SECONDS" --argjson rto "$rto" --argjson rtot "$RESTORABLE_RTO_SECONDS" \
      --argjson durations "$durations" --arg result "$result" --argjson failure "$failure" '
      def orNull: if . == "" then null else . end;
      {volume: $v, stamp: ($s | orNull), tier: ($t | orNull), manifestKey: ($m | orNull), objectKey: ($o | orNull),
       listingKey: ($l | orNull), createdAt: ($created | orNull), sizeBytes: $size, encryption: ($enc | orNull),
       sha256Ok: $sha, contentVerified: $content, note: ($note | orNull), entries: {listed: $listed, restored: $restored},
       rpo: (if $rpoa == null then null else {achievedSeconds: $rpoa, targetSeconds: $rpot, ok: ($rpoa <= $rpot)} end),
       rto: (if $rto == null then null else {achievedSeconds: $rto, targetSeconds: $rtot, ok: ($rto <= $rtot)} end),
       durations: $durations, result: $result, failure: $failure}' >"$out"
    exit "$rc"
  }
  trap vol_exit EXIT
  trap - INT TERM HUP
  RESTORABLE_STAGE_FILE="$RESTORABLE_TMP/work/stage"
  mkdir -m 0700 "$dir"

  restorable_stage find
  local found=0
  if [[ $mode == older ]] || drill_find volume "$vol" "$key"; then found=1; fi
  if [[ $mode == newest ]]; then rpo_age=${FIND_AGE:-null}; fi
  if [[ -n ${pick_manifest[$key]:-} ]]; then s=${pick_stamp[$key]} tier=${pick_tier[$key]} mkey=${pick_manifest[$key]}; fi
  if ((!found)); then
    restorable_stage "$FIND_STAGE"
    restorable_die "$FIND_REASON"
  fi
  restorable_stage throwaway
  docker info >/dev/null 2>"$dir/docker.err" || restorable_die "docker is not reachable: $(restorable_last_line "$dir/docker.err")"

  restorable_fetch_manifest "$mkey" volume "$vol" "$dir"
  okey=$RESTORABLE_MF_KEY m_created=$RESTORABLE_MF_CREATED m_size=${RESTORABLE_MF_SIZE:-null} m_enc=$RESTORABLE_MF_ENC
  sha_ok=false
  restorable_fetch_object "$dir" "$identity"
  sha_ok=true
  durations=$(jq -cn --argjson d "$RESTORABLE_T_DOWNLOAD" --argjson v "$RESTORABLE_T_VERIFY" '{download: $d, verify: $v}')
  [[ $RESTORABLE_HEAD == *ustar* ]] || restorable_die "$okey is not a tar archive"

  restorable_stage listing
  local lrc=0
  restorable_vol_fetch_listing "$mkey" "$dir" || lrc=$?
  ((lrc == 0 || lrc == 3)) || restorable_die "cannot fetch the listing of $okey (status $lrc)"

  restorable_stage restore
  t0=$(restorable_realtime)
  restorable_vol_create "$tvol" 2>"$dir/create.err" || restorable_die "cannot create the throwaway volume $tvol: $(restorable_last_line "$dir/create.err")"
  if ! restorable_vol_extract "$dir" "$tvol"; then
    restorable_log_file_tail "$dir/restore.err" 10
    restorable_die "extracting $okey into the throwaway volume failed: $(restorable_decode_into_reason "$dir" "tar -x")"
  fi
  rm -f -- "$RESTORABLE_OBJ"
  durations=$(jq -c --argjson r "$(restorable_elapsed "$t0")" '. + {restore: $r}' <<<"$durations")

  restorable_stage listing
  t0=$(restorable_realtime)
  restorable_vol_listing "$tvol" "$dir/listing.restored" ||
    restorable_die "cannot list the restored volume with $RESTORABLE_VOLUME_IMAGE: $(restorable_last_line "$dir/listing.restored.err")"
  restored=$(($(grep -vc '^#' "$dir/listing.restored" || true)))
  durations=$(jq -c --argjson l "$(restorable_elapsed "$t0")" '. + {listing: $l}' <<<"$durations")

  restorable_stage compare
  t0=$(restorable_realtime)
  if ((lrc == 3)); then
    note="content not verified: this backup has no listing (made before backup-volumes recorded one); the tarball extracted, $restored entries"
    restorable_log "volume $vol: $note"
  else
    listed=$(($(grep -vc '^#' "$dir/listing.expected" || true)))
    if [[ -n $RESTORABLE_VOL_LENTRIES && $RESTORABLE_VOL_LENTRIES != "$listed" ]]; then
      restorable_die "volume $vol: the listing $RESTORABLE_VOL_LKEY holds $listed entries, its manifest says $RESTORABLE_VOL_LENTRIES"
    fi
    local first
    if ! first=$(restorable_vol_compare "$dir/listing.expected" "$dir/listing.restored"); then
      [[ -n $first ]] || restorable_die "volume $vol: cannot compare the listings"
      restorable_die "volume $vol: $(restorable_vol_diff_reason "$first")"
    fi
    content=true
    restorable_log "volume $vol: all $listed entries of the listing restored identically"
  fi
  durations=$(jq -c --argjson c "$(restorable_elapsed "$t0")" '. + {compare: $c}' <<<"$durations")

  if [[ $mode == older ]]; then
    restorable_log "volume $vol: older $tier restore point $s passed$([[ $content == true ]] || printf ' (content not verified)')"
    exit 0
  fi
  restorable_stage rto
  # The volume's restore time: download + verify + decrypt/decompress/extract (not the drill's own
  # listing and comparison). Reported per volume; the databases' RTO figures stay their own.
  rto=$(jq -r '[.download, .verify, .restore] | add * 1000 | round / 1000' <<<"$durations")
  restorable_rto_check "restoring volume $vol" "$rto" "download + verify + decrypt + extract"
  restorable_log "volume $vol: passed$([[ $content == true ]] || printf ' (content not verified)'); RPO $(restorable_human_age "$rpo_age"), restore ${rto} s"
  exit 0
}

# drill_volume_result VOLUME: DRILL_RESULT as the volume's result (the reason names the volume).
drill_volume_result() {
  jq -c --arg v "$1" '{volume: $v} + . | if (.failure.reason // "volume " | startswith("volume ")) then . else .failure.reason = "volume \($v): \(.failure.reason)" end' <<<"$DRILL_RESULT"
}
if ((${#volumes[@]})); then RESTORABLE_VOL_USED=1; fi
for i in "${!volumes[@]}"; do
  v=${volumes[$i]}
  restorable_stage find
  drill_child drill_volume "$RESTORABLE_TMP/work/vresult-$i.json" "$v" "$i" "vol:$v" newest
  vol_result[$v]=$(drill_volume_result "$v")
done

# ---- one older restore point per database, volume and tier -----------------------------------------
# So that every tier is proven every drill and, over a year of monthly drills, every monthly
# restore point at least once: per database and volume and tier (besides the newest, drilled
# above), one restore point never proven by the recent drills (the newest 24 reports in
# <host>/drills/), at random; when all were, the least recently proven. A database's is restored
# into the throwaway (replacing the newest's database) and checked like the newest (tables,
# checks); a volume's into its own throwaway volume and compared with its listing like the newest
# (without a listing: extracted and counted, "content not verified"). Each result is reported in
# olderPoints with why it was chosen, and a failure fails the drill. No RPO/RTO for these.
# drill_older_pick KIND NAME TIER SKIP -> "proven<TAB>point line" of the restore point to prove
# (proven: the startedAt of the drill that last proved it, "-" = never, which sorts first), or
# nothing when the item has no point in TIER but SKIP (the newest's manifest key).
drill_older_pick() {
  awk -F '\t' -v k="$1" -v d="$2" -v t="$3" -v skip="$4" '
    FILENAME == ARGV[1] { if (!($1 in last) || $2 > last[$1]) last[$1] = $2; next }
    $1 == k && $2 == d && $3 == t && $5 != skip { print ($5 in last ? last[$5] : "-") "\t" $0 }' \
    "$older_proven" "$RESTORABLE_TMP/work/points.tsv" | shuf | sort -s -t $'\t' -k1,1 | head -n 1
}
# drill_older KIND NAME TIER SKIP KEY: pick it into pick_*[KEY]; sets OLDER_WHY (why it was
# chosen); returns 1 when there is none.
OLDER_WHY=""
drill_older() {
  local pick proven s mkey okey osize
  pick=$(drill_older_pick "$1" "$2" "$3" "$4")
  [[ -n $pick ]] || return 1
  IFS=$'\t' read -r proven _ _ _ s mkey okey osize <<<"$pick"
  pick_manifest[$5]=$mkey pick_stamp[$5]=$s pick_tier[$5]=$3 pick_object[$5]=$okey pick_size[$5]=$osize
  if [[ $proven == - ]]; then OLDER_WHY="never proven by a drill"; else OLDER_WHY="the least recently proven (last proven by the drill of $proven)"; fi
}
if ((${#todo[@]} + ${#volumes[@]})); then
  restorable_stage find
  older_proven="$RESTORABLE_TMP/work/proven.tsv"   # manifestKey <TAB> startedAt of the drill that proved it
  : >"$older_proven"
  mkdir -m 0700 "$RESTORABLE_TMP/work/reports"
  jq -r --arg p "${RESTORABLE_PREFIX}drills/" 'select(.key | startswith($p) and endswith(".json")) | .key' "$RESTORABLE_TMP/work/listing.jsonl" |
    sort | tail -n 24 >"$RESTORABLE_TMP/work/reports.txt"
  while IFS= read -r rkey; do
    rfile="$RESTORABLE_TMP/work/reports/${rkey##*/}"
    if restorable_s3_fetch "$rkey" "$rfile" 0; then
      jq -r '.startedAt as $t | ([.globals] + (.databases // []) + (.olderPoints // []) + (.volumes // []))[]
        | select(. != null and .result == "pass" and .manifestKey != null) | "\(.manifestKey)\t\($t)"' "$rfile" >>"$older_proven" 2>/dev/null ||
        restorable_log "warning: drill report $rkey is not readable; its restore points count as unproven"
    else
      restorable_log "warning: cannot download drill report $rkey; its restore points count as unproven"
    fi
  done <"$RESTORABLE_TMP/work/reports.txt"
  for db in "${todo[@]}"; do
    for tier in daily weekly monthly; do
      k="$db@$tier"
      drill_older postgres "$db" "$tier" "${pick_manifest[$db]}" "$k" || continue
      restorable_log "$db: older $tier restore point ${pick_stamp[$k]}: $OLDER_WHY"
      mkdir -m 0700 "$RESTORABLE_TMP/work/db-$k"
      restorable_stage download
      drill_child drill_one "$RESTORABLE_TMP/work/result-$k.json" "$db" "$k" older
      older_results+=("$(jq -c --arg d "$db" --arg why "$OLDER_WHY" '{database: $d, chosenBecause: $why} + . | del(.rpo, .rto)' <<<"$DRILL_RESULT")")
    done
  done
  for i in "${!volumes[@]}"; do
    v=${volumes[$i]}
    newest=$(restorable_pick "$RESTORABLE_TMP/work/points.tsv" volume "$v" | cut -f5)
    [[ -n $newest ]] || continue
    for tier in daily weekly monthly; do
      k="vol:$v@$tier"
      drill_older volume "$v" "$tier" "$newest" "$k" || continue
      restorable_log "volume $v: older $tier restore point ${pick_stamp[$k]}: $OLDER_WHY"
      restorable_stage find
      drill_child drill_volume "$RESTORABLE_TMP/work/vresult-$i-$tier.json" "$v" "$i-$tier" "$k" older
      older_results+=("$(drill_volume_result "$v" | jq -c --arg why "$OLDER_WHY" '{volume: .volume, chosenBecause: $why} + . | del(.rpo, .rto)')")
    done
  done
fi

# ---- point in time (lib-pitr-restore.sh): each archived cluster of the drilled databases, recovered
# ---- to a random second of its window in a throwaway server of its own (the dumps' one is removed first)
pitr_results=()
if ((${#RESTORABLE_PITR_CLUSTER[@]} && ${#databases[@]})); then
  restorable_throwaway_down
  for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do
    restorable_pitr_dbs_of "${RESTORABLE_PITR_CLUSTER[c]}" | grep -qxF -f <(printf '%s\n' "${databases[@]}") || continue
    restorable_stage find
    RESTORABLE_TA_KIND=local RESTORABLE_TA_DIR="$RESTORABLE_TMP/pg" RESTORABLE_TA_BIN=$(restorable_local_pgbin || true)
    drill_child restorable_pitr_drill_item "$RESTORABLE_TMP/work/pitr-result-$c.json" "${RESTORABLE_PITR_CLUSTER[c]}"
    restorable_throwaway_down
    pitr_results+=("$DRILL_RESULT")
  done
fi

# ---- retention audit ---------------------------------------------------------------------------------
# The restore points in the bucket against the promise on this date (README "Retention": one from
# each of the last N days, weeks and months, the periods that end with yesterday), per database,
# the roles and each volume. More points than promised are fine; periods that ended before an
# item's oldest restore point are pending (the item is younger than the promise). A promised
# restore point that is missing fails the drill at its own stage, naming it.
restorable_stage retention
restorable_promise_periods "$now" "$RESTORABLE_RETENTION_DAILY" "$RESTORABLE_RETENTION_WEEKLY" "$RESTORABLE_RETENTION_MONTHLY" >"$RESTORABLE_TMP/work/periods.tsv"
audit_items=()
audit_first="" audit_gaps=0
audit_item() { # KIND NAME WHAT
  local line what=$3 covered=0 pending=0 missing=()
  while IFS=$'\t' read -r -a line; do
    case ${line[0]} in
      covered) covered=${line[1]} ;;
      pending) pending=${line[1]} ;;
      missing) missing+=("${line[1]} ${line[2]}") ;;
    esac
  done < <(restorable_promise_audit "$RESTORABLE_TMP/work/periods.tsv" "$RESTORABLE_TMP/work/points.tsv" "$1" "$2")
  audit_items+=("$(printf '%s\n' "${missing[@]}" | jq -R . | jq -cs --arg k "$1" --arg n "$2" --argjson c "$covered" --argjson p "$pending" \
    '{kind: $k, name: (if $n == "-" then null else $n end), covered: $c, pending: $p, missing: map(select(. != ""))}')")
  if ((${#missing[@]})); then
    restorable_log "retention: $what: no restore point for ${missing[*]}"
    audit_gaps=$((audit_gaps + ${#missing[@]}))
    local m=${missing[0]}
    [[ -n $audit_first ]] || audit_first="$what: no ${m%% *} restore point for ${m#* }"
  fi
}
if ((${#databases[@]})); then audit_item globals - "the roles"; fi
for db in "${databases[@]}"; do audit_item postgres "$db" "database $db"; done
for v in "${RESTORABLE_VOLUMES[@]}"; do audit_item volume "$v" "volume $v"; done
if [[ -n $audit_first ]]; then
  reason=$audit_first
  ((audit_gaps == 1)) || reason+=" (and $((audit_gaps - 1)) more missing; see the report's retention)"
  retention_result=$(jq -cn --arg r "$reason" '{result: "fail", failure: {stage: "retention", reason: $r}}')
else
  retention_result='{"result": "pass", "failure": null}'
fi
retention_result=$(printf '%s\n' "${audit_items[@]}" | jq -cs --argjson r "$retention_result" \
  --argjson d "$RESTORABLE_RETENTION_DAILY" --argjson w "$RESTORABLE_RETENTION_WEEKLY" --argjson m "$RESTORABLE_RETENTION_MONTHLY" \
  '{promise: {daily: $d, weekly: $w, monthly: $m}, items: map(select(. != null))} + $r')

drill_fail_first
restorable_stage report
passed=""
if ((${#databases[@]})); then passed="the roles, ${#databases[@]} database(s) and ${#older_results[@]} older restore point(s)"; fi
if ((${#volumes[@]})); then passed+="${passed:+; }${#volumes[@]} volume(s)"; fi
if ((${#volumes[@]} && !${#databases[@]})); then passed+=" and ${#older_results[@]} older restore point(s)"; fi
if ((${#pitr_results[@]})); then passed+="; ${#pitr_results[@]} cluster(s) recovered to a point in time"; fi
restorable_log "drill passed for $passed"
exit 0
