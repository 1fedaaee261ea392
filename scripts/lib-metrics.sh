# shellcheck shell=bash
# restorable: node_exporter textfile metrics (hosts[].metrics.textfileDir; sourced by lib.sh).
#
# Each job keeps its own fragment, $RESTORABLE_STATE_DIR/metrics/<job>.prom (sample lines only),
# and at its end merges every fragment into <textfileDir>/restorable.prom under a lock, through
# a temp file renamed in that directory: node_exporter never reads a half-written file, and
# concurrent jobs (backup and backup-volumes share a schedule) never lose each other's lines.
# Values that must survive a failed run (last success, its size and duration) are carried over
# from the job's previous fragment. RESTORABLE_METRICS_DIR empty: nothing is written, nothing fails.
# A metrics problem is logged and never fails a job (the backup matters more than its gauge).

# Every metric, in the order written: name|type|help.
RESTORABLE_METRICS=(
  "restorable_job_last_attempt_timestamp_seconds|gauge|When the job last ran (Unix time)."
  "restorable_job_last_success_timestamp_seconds|gauge|When the job last succeeded (Unix time)."
  "restorable_job_duration_seconds|gauge|How long the job's last run took."
  "restorable_job_success|gauge|1 if the job's last run succeeded, else 0."
  "restorable_job_exit_code|gauge|Exit status of the job's last run (0 ok, 1 failed, 2 config, 3 locked)."
  "restorable_backup_last_attempt_timestamp_seconds|gauge|When this database, roles or volume was last backed up or tried (Unix time)."
  "restorable_backup_last_success_timestamp_seconds|gauge|Creation time of the newest restore point this host made of the item (Unix time)."
  "restorable_backup_success|gauge|1 if the item's last backup succeeded, else 0."
  "restorable_backup_bytes|gauge|Size of the item's newest restore point as stored (compressed, encrypted)."
  "restorable_backup_duration_seconds|gauge|How long the item's newest successful backup took."
  "restorable_drill_last_timestamp_seconds|gauge|When the last restore drill started (Unix time)."
  "restorable_drill_last_success_timestamp_seconds|gauge|When the last passing restore drill started (Unix time)."
  "restorable_drill_success|gauge|1 if the last restore drill passed, else 0."
  "restorable_drill_database_success|gauge|1 if the database passed the last drill, else 0."
  "restorable_drill_rto_seconds|gauge|Achieved recovery time of the database in the last drill (download, verify, restore, checks)."
  "restorable_drill_rpo_seconds|gauge|Achieved recovery point of the database in the last drill (age of the restored backup)."
  "restorable_rpo_objective_seconds|gauge|The configured RPO (restorable:objectives.rpo)."
  "restorable_rto_objective_seconds|gauge|The configured RTO (restorable:objectives.rto)."
  "restorable_wal_archive_unarchived_seconds|gauge|Age of the cluster's oldest WAL not yet in the bucket, as the WAL archiver last measured it (0: all of it off-site); above the RPO the archiver alarms."
  "restorable_wal_archive_check_timestamp_seconds|gauge|When the WAL archiver last measured the cluster (Unix time); minutes old: the archiver is not running."
)

# restorable_metric_label VALUE: VALUE escaped for a label ("\" -> "\\", '"' -> '\"', newline -> "\n").
restorable_metric_label() {
  local v=$1
  v=${v//\\/\\\\}
  v=${v//\"/\\\"}
  v=${v//$'\n'/\\n}
  printf '%s' "$v"
}

# restorable_metrics_item KIND NAME ok|fail [BYTES START]: one item's outcome in this run (KIND:
# postgres, globals or volume; NAME "" for globals). Written to the run dir, so a background job
# (the globals) can record too.
restorable_metrics_item() {
  [[ -n ${RESTORABLE_METRICS_DIR:-} && -n ${RESTORABLE_RUN_DIR:-} ]] || return 0
  local seconds=
  if [[ -n ${5:-} ]]; then seconds=$(restorable_elapsed "$5"); fi
  # Fields split by \x1f: a whitespace IFS (tab) would merge the empty name of the globals away.
  printf '%s\x1f%s\x1f%s\x1f%s\x1f%s\n' "$1" "$2" "$3" "${4:-}" "$seconds" >>"$RESTORABLE_RUN_DIR/metrics.items" 2>/dev/null || true
}

# restorable_metrics_job JOB EXIT_CODE DURATION [NOW]: write JOB's fragment (job lines, the items
# recorded by restorable_metrics_item, and for restore-drill the report in RESTORABLE_METRICS_REPORT)
# and merge all fragments into the textfile. NOW (Unix time) defaults to the run's clock.
restorable_metrics_job() {
  [[ -n ${RESTORABLE_METRICS_DIR:-} && -n ${RESTORABLE_STATE_DIR:-} ]] || return 0
  local job=$1 code=$2 duration=$3 now=${4:-${RESTORABLE_EPOCH:-$(date -u +%s)}}
  local dir="$RESTORABLE_STATE_DIR/metrics" frag old new host l
  mkdir -p -- "$dir" 2>/dev/null || true
  frag="$dir/$job.prom"
  old="$frag.$$.old" # per process: a run refused by the lock (exit 3) writes too
  new="$frag.$$.new"
  if [[ -f $frag ]]; then cp -f -- "$frag" "$old" 2>/dev/null || : >"$old"; else : >"$old"; fi
  host=$(restorable_metric_label "${RESTORABLE_HOST:-}")
  l="host=\"$host\",job=\"$(restorable_metric_label "$job")\""
  {
    printf 'restorable_job_last_attempt_timestamp_seconds{%s} %s\n' "$l" "$now"
    if ((code == 0)); then
      printf 'restorable_job_last_success_timestamp_seconds{%s} %s\n' "$l" "$now"
    else
      grep -F "restorable_job_last_success_timestamp_seconds{$l}" "$old" || true
    fi
    printf 'restorable_job_duration_seconds{%s} %s\n' "$l" "$duration"
    printf 'restorable_job_success{%s} %s\n' "$l" "$((code == 0 ? 1 : 0))"
    printf 'restorable_job_exit_code{%s} %s\n' "$l" "$code"
    printf 'restorable_rpo_objective_seconds{host="%s"} %s\n' "$host" "${RESTORABLE_RPO_SECONDS:-0}"
    printf 'restorable_rto_objective_seconds{host="%s"} %s\n' "$host" "${RESTORABLE_RTO_SECONDS:-0}"
    restorable__metrics_items "$l" "$now" "$old"
    if [[ $job == restore-drill ]]; then restorable__metrics_drill "$host" "$old"; fi
  } >"$new" 2>/dev/null || { restorable__metrics_warn "cannot write $new"; return 0; }
  rm -f -- "$old"
  restorable__metrics_install "$new" "$frag"
}

# restorable_metrics_fragment NAME: the sample lines on stdin become fragment NAME (replacing its
# previous lines) and the textfile is merged again; for a long-running job's gauges (the WAL
# archiver's, every half minute), which restorable_metrics_job writes only when the job ends.
restorable_metrics_fragment() {
  [[ -n ${RESTORABLE_METRICS_DIR:-} && -n ${RESTORABLE_STATE_DIR:-} ]] || { cat >/dev/null; return 0; }
  local dir="$RESTORABLE_STATE_DIR/metrics" new
  mkdir -p -- "$dir" 2>/dev/null || true
  new="$dir/$1.prom.$$.new"
  cat >"$new" 2>/dev/null || { restorable__metrics_warn "cannot write $new"; rm -f -- "$new"; return 0; }
  restorable__metrics_install "$new" "$dir/$1.prom"
}

# restorable__metrics_install NEW FRAGMENT: NEW replaces FRAGMENT, then every fragment is merged.
restorable__metrics_install() {
  mv -f -- "$1" "$2" || { restorable__metrics_warn "cannot write $2"; return 0; }
  restorable__metrics_merge "${2%/*}"
}

restorable__metrics_warn() {
  printf '%s restorable %s: warning: metrics: %s\n' "$(restorable_utc)" "${RESTORABLE_SCRIPT:-restorable}" "$*" >&2
}

# Item lines: this run's outcomes; items not tried in this run keep their previous lines.
restorable__metrics_items() {
  local l=$1 now=$2 old=$3 kind name result bytes seconds il seen=$'\n' line
  if [[ -n ${RESTORABLE_RUN_DIR:-} && -f $RESTORABLE_RUN_DIR/metrics.items ]]; then
    while IFS=$'\x1f' read -r kind name result bytes seconds; do
      il="$l,kind=\"$kind\",item=\"$(restorable_metric_label "$name")\""
      seen+="$il"$'\n'
      printf 'restorable_backup_last_attempt_timestamp_seconds{%s} %s\n' "$il" "$now"
      if [[ $result == ok ]]; then
        printf 'restorable_backup_last_success_timestamp_seconds{%s} %s\n' "$il" "$now"
        printf 'restorable_backup_success{%s} 1\n' "$il"
        printf 'restorable_backup_bytes{%s} %s\n' "$il" "${bytes:-0}"
        printf 'restorable_backup_duration_seconds{%s} %s\n' "$il" "${seconds:-0}"
      else
        printf 'restorable_backup_success{%s} 0\n' "$il"
        grep -F -e "restorable_backup_last_success_timestamp_seconds{$il}" -e "restorable_backup_bytes{$il}" \
          -e "restorable_backup_duration_seconds{$il}" "$old" || true
      fi
    done <"$RESTORABLE_RUN_DIR/metrics.items"
  fi
  while IFS= read -r line; do
    [[ $line == restorable_backup_* ]] || continue
    il=${line#*\{}
    il=${il%\} *}
    [[ $seen == *$'\n'"$il"$'\n'* ]] || printf '%s\n' "$line"
  done <"$old"
}

# Drill lines from the report the drill just wrote (RESTORABLE_METRICS_REPORT), else kept.
restorable__metrics_drill() {
  local host=$1 old=$2 report=${RESTORABLE_METRICS_REPORT:-}
  if [[ -z $report || ! -f $report ]]; then
    grep -E '^restorable_drill_' "$old" || true
    return 0
  fi
  jq -r --arg host "$host" '
    def esc: gsub("\\\\"; "\\\\\\\\") | gsub("\""; "\\\"") | gsub("\n"; "\\n");
    def epoch: sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601;
    (.startedAt | epoch) as $t |
    "restorable_drill_last_timestamp_seconds{host=\"\($host)\"} \($t)",
    "restorable_drill_success{host=\"\($host)\"} \(if .result == "pass" then 1 else 0 end)",
    (.databases[]? | "database=\"\(.database | esc)\"" as $d |
      "restorable_drill_database_success{host=\"\($host)\",\($d)} \(if .result == "pass" then 1 else 0 end)",
      (select(.rto.achievedSeconds != null) | "restorable_drill_rto_seconds{host=\"\($host)\",\($d)} \(.rto.achievedSeconds)"),
      (select(.rpo.achievedSeconds != null) | "restorable_drill_rpo_seconds{host=\"\($host)\",\($d)} \(.rpo.achievedSeconds)")),
    (if .result == "pass" then "restorable_drill_last_success_timestamp_seconds{host=\"\($host)\"} \($t)" else empty end)
  ' "$report" 2>/dev/null || restorable__metrics_warn "cannot read the drill report $report"
  if ! jq -e '.result == "pass"' "$report" >/dev/null 2>&1; then
    grep -F 'restorable_drill_last_success_timestamp_seconds{' "$old" || true
  fi
}

# All fragments -> <textfileDir>/restorable.prom (HELP and TYPE once per metric), atomically.
restorable__metrics_merge() {
  local dir=$1 out="$RESTORABLE_METRICS_DIR/restorable.prom" tmp fd spec name type help samples
  mkdir -p -- "$RESTORABLE_METRICS_DIR" 2>/dev/null || true
  tmp="$RESTORABLE_METRICS_DIR/.restorable.prom.$$.tmp"
  exec {fd}>>"$dir/.merge.lock" || { restorable__metrics_warn "cannot open $dir/.merge.lock"; return 0; }
  flock -w 30 "$fd" || restorable__metrics_warn "waited 30 s for $dir/.merge.lock; merging anyway"
  if ! {
    for spec in "${RESTORABLE_METRICS[@]}"; do
      IFS='|' read -r name type help <<<"$spec"
      samples=$(grep -h -- "^$name{" "$dir"/*.prom 2>/dev/null | LC_ALL=C sort -u || true)
      [[ -n $samples ]] || continue
      printf '# HELP %s %s\n# TYPE %s %s\n%s\n' "$name" "$help" "$name" "$type" "$samples"
    done
  } >"$tmp" 2>/dev/null || ! chmod 0644 "$tmp" || ! mv -f -- "$tmp" "$out"; then
    rm -f -- "$tmp"
    restorable__metrics_warn "cannot write $out"
  fi
  exec {fd}>&-
}
