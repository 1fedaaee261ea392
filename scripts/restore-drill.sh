#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# restore-drill — prove that the newest backups restore: the monthly restore drill (cron).
# Installed by restorable as <scriptsDir>/restore-drill.
#
# Usage:
#   restore-drill [--database NAME]... [--runtime docker|local] [--image IMAGE] [--identity FILE]
#
# For each configured database (RESTORABLE_PG_DATABASE, or the --database ones):
#   find      the newest manifest-backed backup (objects without a manifest are never used)
#   rpo       fail when it is older than the RPO objective (RESTORABLE_RPO_SECONDS)
#   download  the manifest and the object
#   verify    sha256 (and size) of the downloaded bytes against the manifest
#   decrypt   with the age identity (--identity FILE or RESTORABLE_AGE_IDENTITY) when encrypted,
#   decompress  checked on the first bytes, then streamed (no decompressed copy on disk)
#   restore   into a throwaway Postgres (pg_restore --single-transaction --exit-on-error
#             --no-owner --no-privileges); any error fails the drill
#   tables    the restored schema.table list must equal the manifest's
#   checks    every RESTORABLE_DRILL_CHECKS statement must return true
#   rto       download + verify + decrypt + restore + checks must fit RESTORABLE_RTO_SECONDS
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
# decompress, restore, tables, checks, rto, report); 2 usage or configuration error; 3 another
# drill holds the lock.
set -euo pipefail

RR_SCRIPT=restore-drill
RR_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# lib.sh: the shared library (signed S3 requests); lib-restore.sh: restore and drill helpers.
# shellcheck source=lib.sh
. "$RR_HERE/lib.sh"
# shellcheck source=lib-restore.sh
. "$RR_HERE/lib-restore.sh"
# shellcheck source=lib-pitr.sh
. "$RR_HERE/lib-pitr.sh"

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

only=() runtime="" image="" identity=""
rr_traps
while (($#)); do
  case $1 in
    -h | --help) usage || true; exit 0 ;;
    --database) [[ $# -ge 2 ]] || rr_usage "--database needs a name"; only+=("$2"); shift ;;
    --runtime) [[ $# -ge 2 ]] || rr_usage "--runtime needs docker or local"; runtime=$2; shift ;;
    --image) [[ $# -ge 2 ]] || rr_usage "--image needs an image"; image=$2; shift ;;
    --identity) [[ $# -ge 2 ]] || rr_usage "--identity needs a file"; identity=$2; shift ;;
    *) rr_usage "unknown argument: $1" ;;
  esac
  shift
done

rr_load_config
runtime=${runtime:-$RESTORABLE_DRILL_RUNTIME}
image=${image:-$RESTORABLE_DRILL_IMAGE}
identity=${identity:-$RESTORABLE_AGE_IDENTITY}
[[ $runtime == docker || $runtime == local ]] || rr_usage "runtime must be docker or local, not \"$runtime\""
databases=("${RESTORABLE_PG_DATABASE[@]}")
if ((${#only[@]})); then
  for d in "${only[@]}"; do
    printf '%s\n' "${databases[@]}" | grep -qxF -- "$d" || rr_usage "database $d is not configured on $RESTORABLE_HOST"
  done
  databases=("${only[@]}")
fi

rr_tmp_init
rr_lock restore-drill
printf '%s\n' "$RESTORABLE_HOST" >"$RR_TMP/host"
rr_throwaway_reap
started_epoch=$(rr_now)
started_at=$(rr_iso "$started_epoch")
stamp=$(rr_stamp "$started_epoch")
RR_RUN_ID="$stamp-$$"
t_run=$(rr_clock)
setup_seconds=null
report_key="${RESTORABLE_PREFIX}drills/$stamp.json"
report_file="$RESTORABLE_STATE_DIR/drills/$stamp.json"
db_results=()   # one JSON object per database
rr_ping_start
rr_log "drill $RR_RUN_ID of ${#databases[@]} database(s) on $RESTORABLE_HOST, runtime $runtime$([[ $runtime == docker ]] && printf ' (%s)' "$image")"

# ---- report (also written on failure: a failed drill is evidence too) -----------------------------

# shellcheck disable=SC2317,SC2034 # called by the EXIT trap in lib-restore.sh
rr_on_finish() {
  local rc=$1 result=pass failure=null checks_json
  if [[ $rc -ne 0 ]]; then
    result=fail
    failure=$(jq -cn --arg stage "${RR_FAIL_STAGE:-$RR_STAGE}" --arg reason "$RR_FAIL_REASON" '{stage: $stage, reason: $reason}')
  fi
  checks_json=$(printf '%s\n' "${RESTORABLE_DRILL_CHECKS[@]}" | jq -R . | jq -cs 'map(select(. != ""))')
  mkdir -p "$RESTORABLE_STATE_DIR/drills" 2>/dev/null || true
  if ! printf '%s\n' "${db_results[@]}" | jq -s \
    --arg host "$RESTORABLE_HOST" --arg startedAt "$started_at" --arg finishedAt "$(rr_iso "$(rr_now_since "$started_epoch")")" \
    --arg runtime "$runtime" --arg image "$image" --arg runId "$RR_RUN_ID" --arg bucket "$RESTORABLE_BUCKET" \
    --arg reportKey "$report_key" --argjson durationSeconds "$(rr_elapsed "$t_run")" --argjson setupSeconds "$setup_seconds" \
    --argjson rpo "$RESTORABLE_RPO_SECONDS" --argjson rto "$RESTORABLE_RTO_SECONDS" --argjson checks "$checks_json" \
    --arg result "$result" --argjson failure "$failure" '
    {format: 1, kind: "restore-drill", host: $host, runId: $runId, startedAt: $startedAt, finishedAt: $finishedAt,
     durationSeconds: $durationSeconds, bucket: $bucket, reportKey: $reportKey,
     throwaway: {runtime: $runtime, image: (if $runtime == "docker" then $image else null end), setupSeconds: $setupSeconds},
     objectives: {rpoSeconds: $rpo, rtoSeconds: $rto}, checks: $checks,
     databases: map(select(. != null)), result: $result, failure: $failure}' >"$report_file.tmp" 2>/dev/null; then
    rr_log "could not write the drill report"
    return 0
  fi
  mv -f "$report_file.tmp" "$report_file"
  local err
  err=$(mktemp)
  if restorable_s3_put_text "$report_key" application/json "$(cat "$report_file")" 2>"$err"; then
    rr_log "report: s3://$RESTORABLE_BUCKET/$report_key ($result)"
  elif [[ $rc -eq 0 ]]; then
    RR_FAIL_STAGE=report RR_FAIL_REASON="cannot upload the report to s3://$RESTORABLE_BUCKET/$report_key: $(rr_last_line "$err")"
    rm -f "$err"
    rr_finish_rc=1
    return 0
  else
    rr_log "could not upload the report (best effort on a failed drill): $(rr_last_line "$err")"
  fi
  rm -f "$err"
}
# finishedAt follows RESTORABLE_NOW when it is set (so reports of test runs are coherent).
# shellcheck disable=SC2317
rr_now_since() { awk -v s="$1" -v e="$(rr_elapsed "$t_run")" 'BEGIN { printf "%d\n", s + e }'; }

# ---- find + rpo for every database, while the throwaway Postgres starts in the background ----------
# (when a database has no usable backup, the throwaway is removed again before anything is restored)

rr_stage find
[[ ${#databases[@]} -gt 0 ]] || rr_die "no postgres databases are configured on $RESTORABLE_HOST: nothing to drill"
rr_throwaway_start "$runtime" "$image"
rr_list_bucket "$RR_TMP/work/listing.jsonl"
rr_restore_points "$RR_TMP/work/listing.jsonl" >"$RR_TMP/work/points.tsv"
now=$(rr_now)
declare -A pick_manifest=() pick_stamp=() pick_tier=() pick_object=() pick_size=() pitr_rpo=()
first_stage="" first_reason=""
for i in "${!databases[@]}"; do
  db=${databases[$i]}
  point=$(rr_pick "$RR_TMP/work/points.tsv" postgres "$db")
  if [[ -z $point ]]; then
    reason="no manifest-backed backup of database $db under s3://$RESTORABLE_BUCKET/$RESTORABLE_PREFIX"
    db_results+=("$(jq -cn --arg d "$db" --arg r "$reason" '{database: $d, result: "fail", failure: {stage: "find", reason: $r}}')")
    rr_log "$db: $reason"
    [[ -n $first_stage ]] || { first_stage=find first_reason=$reason; }
    continue
  fi
  IFS=$'\t' read -r _ _ tier s mkey okey osize <<<"$point"
  created=$(rr_stamp_epoch "$s")
  age=$((now - created))
  pick_manifest[$db]=$mkey pick_stamp[$db]=$s pick_tier[$db]=$tier pick_object[$db]=$okey pick_size[$db]=$osize
  # With PITR the WAL archive, not the dump, meets the RPO (lib-pitr.sh).
  if restorable_pitr_rpo "$db"; then age=$PITR_RPO_AGE pitr_rpo[$db]=$PITR_RPO_AGE; rr_log "$db: RPO from the WAL archive: $PITR_RPO_TEXT"; fi
  if ((age > RESTORABLE_RPO_SECONDS)); then
    reason="the newest backup of $db ($s, $tier) is $(rr_human_age "$age") old, older than the RPO objective of $(rr_human_age "$RESTORABLE_RPO_SECONDS")"
    if [[ -n ${pitr_rpo[$db]:-} ]]; then reason="$PITR_RPO_TEXT, more than the RPO objective of $(rr_human_age "$RESTORABLE_RPO_SECONDS")"; fi
    db_results+=("$(jq -cn --arg d "$db" --arg s "$s" --arg t "$tier" --arg m "$mkey" --arg r "$reason" --argjson a "$age" --argjson tg "$RESTORABLE_RPO_SECONDS" \
      '{database: $d, stamp: $s, tier: $t, manifestKey: $m, rpo: {achievedSeconds: $a, targetSeconds: $tg, ok: false}, result: "fail", failure: {stage: "rpo", reason: $r}}')")
    rr_log "$db: $reason"
    unset 'pick_manifest[$db]'
    [[ -n $first_stage ]] || { first_stage=rpo first_reason=$reason; }
    continue
  fi
  rr_log "$db: newest backup $s ($tier), $(rr_human_age "$age") old"
done
if [[ -n $first_stage ]]; then
  RR_STAGE=$first_stage
  rr_die "$first_reason"
fi

# ---- the first restore point downloads while the throwaway finishes starting ---------------------------

for db in "${databases[@]}"; do mkdir -m 0700 "$RR_TMP/work/db-$db"; done
db=${databases[0]}
rr_prefetch_point "${pick_manifest[$db]}" "${pick_object[$db]}" "${pick_size[$db]}" "$RR_TMP/work/db-$db"
rr_stage throwaway
rr_throwaway_ready
setup_seconds=$RR_TA_SECONDS
rr_log "throwaway Postgres up in $setup_seconds s: $RR_T_DESC"

# ---- each database, in a child (so that one failure does not stop the others, and a signal stops
# ---- everything at once) --------------------------------------------------------------------------

# drill_one DB OUT: runs in a subshell with set -e; writes its JSON result to OUT on any exit.
drill_one() {
  local db=$1 out=$2 dir="$RR_TMP/work/db-$1"
  local sha_ok=null restore_ok=null tables_ok=null checks="[]" rto=null tables_detail=null durations="{}"
  local rpo_age
  RR_FAIL_STAGE="" RR_FAIL_REASON=""
  # shellcheck disable=SC2317 # invoked by the trap
  db_exit() {
    local rc=$? result=pass failure=null
    trap - EXIT
    set +e
    rr_bg_stop_all
    if [[ $rc -ne 0 ]]; then
      result=fail
      [[ -n $RR_FAIL_REASON ]] || RR_FAIL_REASON="unexpected error${RR_LAST_ERR:+ at $RR_LAST_ERR}"
      failure=$(jq -cn --arg stage "${RR_FAIL_STAGE:-$RR_STAGE}" --arg reason "$RR_FAIL_REASON" '{stage: $stage, reason: $reason}')
    fi
    jq -cn --arg d "$db" --arg s "${pick_stamp[$db]}" --arg t "${pick_tier[$db]}" --arg m "${pick_manifest[$db]}" \
      --arg o "${okey:-}" --arg created "${m_created:-}" --argjson size "${m_size:-null}" --arg enc "${m_enc:-}" \
      --argjson sha "$sha_ok" --argjson restore "$restore_ok" --argjson tables "$tables_ok" --argjson td "$tables_detail" \
      --argjson checks "$checks" --argjson rpoa "$rpo_age" --argjson rpot "$RESTORABLE_RPO_SECONDS" --argjson rto "$rto" \
      --argjson rtot "$RESTORABLE_RTO_SECONDS" --argjson durations "$durations" --arg result "$result" --argjson failure "$failure" '
      {database: $d, stamp: $s, tier: $t, manifestKey: $m, objectKey: (if $o == "" then null else $o end),
       createdAt: (if $created == "" then null else $created end), sizeBytes: $size, encryption: (if $enc == "" then null else $enc end),
       sha256Ok: $sha, restoreOk: $restore, tablesOk: $tables, tables: $td, checks: $checks,
       rpo: {achievedSeconds: $rpoa, targetSeconds: $rpot, ok: ($rpoa <= $rpot)},
       rto: (if $rto == null then null else {achievedSeconds: $rto, targetSeconds: $rtot, ok: ($rto <= $rtot)} end),
       durations: $durations, result: $result, failure: $failure}' >"$out"
    if [[ $rc -ne 0 ]]; then
      printf '%s\t%s\n' "${RR_FAIL_STAGE:-$RR_STAGE}" "$RR_FAIL_REASON" >"$out.fail"
    fi
    exit "$rc"
  }
  trap db_exit EXIT
  trap - INT TERM HUP
  # In this child, rr_die only ends the child; the parent records the failure.
  RR_STAGE_FILE="$RR_TMP/work/stage"
  local okey="" m_created="" m_size="" m_enc=""
  rpo_age=$((now - $(rr_stamp_epoch "${pick_stamp[$db]}")))
  # The parent prefetched the restore point into $dir/fetch (while the throwaway started, or
  # while the previous database restored); whatever is missing is downloaded here.
  rr_fetch_manifest "${pick_manifest[$db]}" postgres "$db" "$dir"
  okey=$RR_MF_KEY m_created=$RR_MF_CREATED m_size=${RR_MF_SIZE:-null} m_enc=$RR_MF_ENC
  if [[ -n $m_created ]]; then
    local ce
    ce=$(date -u -d "$m_created" +%s 2>/dev/null) && rpo_age=$((now - ce))
  fi
  if [[ -n ${pitr_rpo[$db]:-} ]]; then rpo_age=${pitr_rpo[$db]}; fi
  sha_ok=false
  rr_fetch_object "$dir" "$identity"
  sha_ok=true
  durations=$(jq -cn --argjson d "$RR_T_DOWNLOAD" --argjson v "$RR_T_VERIFY" '{download: $d, verify: $v}')

  rr_stage restore
  [[ ${RR_HEAD:0:5} == PGDMP ]] || rr_die "$okey is not a pg_dump custom-format archive"
  local t0 err="$dir/restore.err"
  t0=$(rr_clock)
  restore_ok=false
  rr_sql postgres "CREATE DATABASE \"$db\" TEMPLATE template0" >/dev/null 2>"$err" ||
    rr_die "cannot create database $db in the throwaway Postgres: $(rr_error_line "$err")"
  # Decrypt | decompress | pg_restore, streamed; any error (or error line) fails the drill.
  if ! rr_restore_throwaway "$dir" "$db" --single-transaction --exit-on-error --no-owner --no-privileges; then
    rr_log_file_tail "$err" 20
    rr_die "restoring $okey: $(rr_decode_into_reason "$dir" pg_restore)"
  fi
  if grep -qi 'error' "$err"; then
    rr_log_file_tail "$err" 20
    rr_die "pg_restore of $okey reported: $(grep -m1 -i 'error' "$err" | cut -c1-300)"
  fi
  restore_ok=true
  rm -f -- "$RR_OBJ"
  durations=$(jq -c --argjson r "$(rr_elapsed "$t0")" '. + {restore: $r}' <<<"$durations")

  rr_stage tables
  t0=$(rr_clock)
  tables_ok=false
  rr_manifest_tables "$RR_MF" >"$dir/expected"
  rr_sql "$db" "$RR_TABLES_SQL" >"$dir/actual" 2>"$err" || rr_die "cannot list the restored tables: $(rr_error_line "$err")"
  sort -o "$dir/actual" "$dir/actual"
  tables_detail=$(jq -cn --rawfile e "$dir/expected" --rawfile a "$dir/actual" '
    ($e | split("\n") | map(select(. != ""))) as $E | ($a | split("\n") | map(select(. != ""))) as $A
    | {expected: ($E | length), restored: ($A | length), missing: ($E - $A), unexpected: ($A - $E)}')
  local diff_reason
  if ! diff_reason=$(rr_compare_tables "$dir/expected" "$dir/actual"); then
    rr_die "restored $db differs from the manifest: $diff_reason"
  fi
  tables_ok=true
  durations=$(jq -c --argjson t "$(rr_elapsed "$t0")" '. + {tables: $t}' <<<"$durations")

  rr_stage checks
  local sql outp failed="" i=0
  for sql in "${RESTORABLE_DRILL_CHECKS[@]}"; do
    i=$((i + 1))
    if outp=$(rr_sql "$db" "$sql" 2>"$err"); then
      if [[ $outp == t ]]; then
        checks=$(jq -c --arg s "$sql" '. + [{sql: $s, ok: true}]' <<<"$checks")
        rr_log "$db: check $i passed: $sql"
        continue
      fi
      outp=$(printf '%s' "$outp" | head -c 200)
      checks=$(jq -c --arg s "$sql" --arg o "$outp" '. + [{sql: $s, ok: false, output: $o}]' <<<"$checks")
      rr_log "$db: check $i returned \"$outp\", not true: $sql"
      failed=${failed:-"check $i ($sql) returned \"$outp\", not true"}
    else
      local e1
      e1=$(rr_error_line "$err")
      checks=$(jq -c --arg s "$sql" --arg e "$e1" '. + [{sql: $s, ok: false, error: $e}]' <<<"$checks")
      rr_log "$db: check $i failed: $sql: $e1"
      failed=${failed:-"check $i ($sql) failed: $e1"}
    fi
  done
  durations=$(jq -c --argjson c "$(rr_elapsed "$t0")" '. + {checks: $c}' <<<"$durations")
  [[ -z $failed ]] || rr_die "$db: $failed"

  rr_stage rto
  # RTO achieved: download + verify + decrypt/decompress/restore + table check + SQL checks.
  rto=$(jq -r '[.[]] | add * 1000 | round / 1000' <<<"$durations")
  if awk -v a="$rto" -v t="$RESTORABLE_RTO_SECONDS" 'BEGIN { exit !(a > t) }'; then
    rr_die "restoring $db took ${rto} s (download + verify + decrypt + restore + checks), more than the RTO objective of $(rr_human_age "$RESTORABLE_RTO_SECONDS")"
  fi
  rr_log "$db: passed; RPO $(rr_human_age "$rpo_age") (objective $(rr_human_age "$RESTORABLE_RPO_SECONDS")), RTO ${rto} s (objective $(rr_human_age "$RESTORABLE_RTO_SECONDS"))"
  exit 0
}

for i in "${!databases[@]}"; do
  db=${databases[$i]}
  out="$RR_TMP/work/result-$db.json"
  rr_stage download
  rr_prefetch_wait "${pick_manifest[$db]}" "${pick_object[$db]}" "$RR_TMP/work/db-$db"
  next=${databases[$((i + 1))]:-}
  if [[ -n $next ]]; then rr_prefetch_point "${pick_manifest[$next]}" "${pick_object[$next]}" "${pick_size[$next]}" "$RR_TMP/work/db-$next"; fi
  rc=0
  # Started directly (not through a function in a condition): set -e must stay active in the child.
  RR_CHILD_STAGE_FILE="$RR_TMP/work/stage"
  drill_one "$db" "$out" &
  RR_CHILD=$!
  wait "$RR_CHILD" || rc=$?
  RR_CHILD="" RR_CHILD_STAGE_FILE=""
  if [[ -s $out ]]; then db_results+=("$(cat "$out")"); fi
  if [[ $rc -ne 0 ]]; then
    if [[ -s $out.fail ]]; then
      IFS=$'\t' read -r s r <"$out.fail"
    else
      s=restore r="the drill of $db ended with status $rc"
    fi
    [[ -n $first_stage ]] || { first_stage=$s first_reason=$r; }
  fi
done

if [[ -n $first_stage ]]; then
  RR_STAGE=$first_stage
  rr_die "$first_reason"
fi
rr_stage report
rr_log "drill passed for ${#databases[@]} database(s)"
exit 0
