#!/bin/bash
# restorable backup: dump every configured PostgreSQL database and the cluster roles to the bucket.
#
# For each database: pg_dump -Fc -Z0 (through its access mode: compose | container | local)
#   | zstd | [age -r <recipients>] | tee (sha256, size) | aws s3 cp - s3://<bucket>/<key>
# streamed, with no local copy of the dump, into the tier the bucket's restore points of that
# database call for (restorable_tier: the month's first is monthly, the week's first weekly); then the
# manifest, uploaded last and only when every stage of the pipe exited 0 and the object in the
# bucket has exactly the streamed size. A backup exists only when its manifest exists.
# Meanwhile, once per run, the roles (pg_dumpall --globals-only) of every distinct cluster, the
# same way, in a background job.
# A failing database does not stop the others; the run then fails naming the first failure.
#
# Keys (contract):
#   <host>/<tier>/postgres/<database>/<stamp>.dump.zst[.age]  + <stamp>.manifest.json
#   <host>/<tier>/globals/<stamp>.sql.zst[.age]                + <stamp>.manifest.json
#
# Usage: backup            (no arguments; config from RESTORABLE_CONFIG or the installed path)
# Exit codes (same for all restorable scripts; see lib.sh):
#   0 success, 1 a stage failed, 2 usage/config/credentials error, 3 another backup run holds the lock.
# On failure the last stderr line is "<time> restorable backup: FAILED at stage <stage>: <reason>"
# with stage one of: config, lock, credentials, preflight, connect, dump, globals, compress,
# encrypt, hash, upload, manifest.
# shellcheck disable=SC2154  # RESTORABLE_* settings come from the sourced config and credentials
# shellcheck disable=SC2317  # functions run indirectly, through restorable_try / restorable_stream
set -euo pipefail

RESTORABLE_SELF_DIR=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd -P)
# shellcheck source=lib.sh
. "$RESTORABLE_SELF_DIR/lib.sh"

restorable_no_args "backup" "${BASH_SOURCE[0]}" "$@"

restorable_init backup
restorable_lock backup
restorable_ping start
restorable_load_credentials

# One row: server version | is superuser | database size | tables (JSON: the exact list; row
# counts are cheap estimates: the planner's reltuples once analyzed, else the live-tuple count).
BACKUP_FACTS_SQL="SELECT split_part(current_setting('server_version'), ' ', 1)
  || '|' || (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)::text
  || '|' || pg_database_size(current_database())::text
  || '|' || coalesce((
    SELECT jsonb_agg(jsonb_build_object('schema', n.nspname, 'name', c.relname,
                                        'rows', CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint
                                                     ELSE coalesce(s.n_live_tup, 0) END)
                     ORDER BY n.nspname, c.relname)
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%'
      AND n.nspname NOT LIKE 'pg\\_temp\\_%'), '[]')::text"

# One row per cluster the roles come from: server version | is the user a superuser.
GLOBALS_FACTS_SQL="SELECT split_part(current_setting('server_version'), ' ', 1)
  || '|' || (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)::text"

backup_preflight() {
  restorable_preflight aws zstd sha256sum flock curl
  local i
  for i in "${!RESTORABLE_PG_VIA[@]}"; do
    if [[ ${RESTORABLE_PG_VIA[i]} == compose && -z ${RESTORABLE_COMPOSE:-} ]]; then
      if ! restorable_try preflight restorable_detect_compose; then
        restorable_fail preflight "$RESTORABLE_ERROR_REASON"
      fi
      if [[ $RESTORABLE_COMPOSE == v2 ]]; then
        restorable_log "using docker compose (v2)"
      else
        restorable_log "using docker-compose (v1)"
      fi
    fi
  done
}

backup_database() {
  local i=$1 started=$EPOCHREALTIME
  local db=${RESTORABLE_PG_DATABASE[i]}
  restorable_item_keys "postgres/$db" dump.zst || return 1
  local key=$RESTORABLE_ITEM_KEY manifest=$RESTORABLE_ITEM_MANIFEST
  restorable_log "database $db ($(restorable_pg_describe "$i")): dumping to $(restorable_s3_url "$key")"

  local facts version super size tables
  # (super: whether the user is a superuser; only the globals need it)
  restorable_try connect restorable_pg "$i" psql -X -w -A -t -q -v ON_ERROR_STOP=1 -d "$db" \
    -c "$BACKUP_FACTS_SQL" >"$RESTORABLE_RUN_DIR/facts" || return 1
  facts=$(grep -m1 '|' "$RESTORABLE_RUN_DIR/facts" || true)
  IFS='|' read -r version super size tables <<<"$facts"
  if [[ -z $version || ! $size =~ ^[0-9]+$ || ${tables:0:1} != '[' ]]; then
    RESTORABLE_ERROR_STAGE=connect
    RESTORABLE_ERROR_REASON="unexpected answer from the server: ${facts:0:200}"
    return 1
  fi

  # The database's size on disk bounds the dump's size (no indexes, no dead rows in a dump).
  if ! restorable_stream "$key" "$size" dump pg_dump restorable_pg "$i" pg_dump -w -Fc -Z0 \
    --lock-wait-timeout=600000 -d "$db"; then
    return 1
  fi

  local extra
  extra="\"database\": $(restorable_json_str "$db"),"
  extra+=" \"source\": $(restorable_pg_source_json "$i"),"
  extra+=" \"serverVersion\": $(restorable_json_str "$version"),"
  extra+=" \"tables\": $tables"
  restorable_try manifest backup_upload_manifest "$manifest" \
    "$(restorable_manifest postgres "$key" "$RESTORABLE_STREAM_SIZE" "$RESTORABLE_STREAM_SHA256" custom "$extra" "$started")" || return 1
  restorable_log "database $db: done, $RESTORABLE_STREAM_SIZE bytes, sha256 $RESTORABLE_STREAM_SHA256, manifest $(restorable_s3_url "$manifest")"
  restorable_metrics_item postgres "$db" ok "$RESTORABLE_STREAM_SIZE" "$started"
}

backup_upload_manifest() {
  restorable_s3_put_text "$1" application/json "$2"
}

# The roles and tablespaces of every distinct cluster, one after the other, as one SQL stream.
backup_globals_stream() {
  local i
  for i in "${GLOBALS_SOURCES[@]}"; do
    local -a opts=(-w --globals-only -l "${RESTORABLE_PG_DATABASE[i]}")
    if [[ ${GLOBALS_SUPERUSER[i]:-true} != true ]]; then
      # Only superusers may read pg_authid; without it the roles come without their passwords.
      opts+=(--no-role-passwords)
    fi
    printf -- '--\n-- restorable: roles and tablespaces of %s\n--\n' "$(restorable_pg_describe "$i")"
    restorable_pg "$i" pg_dumpall "${opts[@]}" || return $?
  done
}

backup_globals() {
  local started=$EPOCHREALTIME
  restorable_item_keys globals sql.zst || return 1
  local key=$RESTORABLE_ITEM_KEY manifest=$RESTORABLE_ITEM_MANIFEST
  restorable_log "globals (roles) of ${#GLOBALS_SOURCES[@]} cluster(s): dumping to $(restorable_s3_url "$key")"
  local i facts version super passwords=true
  declare -gA GLOBALS_SUPERUSER=() GLOBALS_VERSION=()
  for i in "${GLOBALS_SOURCES[@]}"; do
    restorable_try connect restorable_pg "$i" psql -X -w -A -t -q -v ON_ERROR_STOP=1 -d "${RESTORABLE_PG_DATABASE[i]}" \
      -c "$GLOBALS_FACTS_SQL" >"$RESTORABLE_RUN_DIR/globals-facts" || return 1
    facts=$(grep -m1 '|' "$RESTORABLE_RUN_DIR/globals-facts" || true)
    IFS='|' read -r version super <<<"$facts"
    GLOBALS_VERSION[$i]=$version
    GLOBALS_SUPERUSER[$i]=$super
    if [[ $super != true ]]; then
      passwords=false
      restorable_log "globals: ${RESTORABLE_PG_USER[i]} is not a superuser on $(restorable_pg_describe "$i"); roles are saved without their passwords"
    fi
  done
  RESTORABLE_STREAM_SMALL=1 restorable_stream "$key" 0 globals pg_dumpall backup_globals_stream || return 1

  local first=${GLOBALS_SOURCES[0]} sources=''
  for i in "${GLOBALS_SOURCES[@]}"; do sources+="${sources:+, }$(restorable_pg_source_json "$i")"; done
  local extra
  extra="\"source\": $(restorable_pg_source_json "$first"),"
  extra+=" \"sources\": [$sources],"
  extra+=" \"rolePasswords\": $passwords,"
  extra+=" \"serverVersion\": $(restorable_json_str "${GLOBALS_VERSION[$first]:-unknown}")"
  restorable_try manifest backup_upload_manifest "$manifest" \
    "$(restorable_manifest globals "$key" "$RESTORABLE_STREAM_SIZE" "$RESTORABLE_STREAM_SHA256" sql "$extra" "$started")" || return 1
  restorable_log "globals: done, $RESTORABLE_STREAM_SIZE bytes, manifest $(restorable_s3_url "$manifest")"
  restorable_metrics_item globals "" ok "$RESTORABLE_STREAM_SIZE" "$started"
}

# backup_globals in the background, alongside the database dumps (it is small; this keeps the run
# as long as the dumps). Its outcome lands in $RESTORABLE_RUN_DIR/globals.result.
backup_globals_job() {
  local rc=0 out="$RESTORABLE_RUN_DIR/globals.result"
  RESTORABLE_ERROR_STAGE=
  RESTORABLE_ERROR_REASON=
  backup_globals || rc=$?
  printf '%s\n%s\n%s\n' "$rc" "$RESTORABLE_ERROR_STAGE" "$RESTORABLE_ERROR_REASON" >"$out.tmp" && mv -f -- "$out.tmp" "$out"
}

# ------------------------------------------------------------------------------------------ main

restorable_log "run $RESTORABLE_STAMP into $(restorable_s3_url "$RESTORABLE_PREFIX"): ${#RESTORABLE_PG_DATABASE[@]} database(s)"
backup_preflight

# Roles: once per run from each distinct cluster (sources on one cluster share their roles).
GLOBALS_SOURCES=()
declare -A seen_cluster=()
for i in "${!RESTORABLE_PG_DATABASE[@]}"; do
  cid=$(restorable_pg_cluster_id "$i")
  if [[ -z ${seen_cluster[$cid]:-} ]]; then
    seen_cluster[$cid]=1
    GLOBALS_SOURCES+=("$i")
  fi
done
GLOBALS_PID=
if ((${#GLOBALS_SOURCES[@]} > 0)); then
  backup_globals_job &
  GLOBALS_PID=$!
  RESTORABLE_BG_PIDS+=("$GLOBALS_PID")
elif ((${#RESTORABLE_PG_DATABASE[@]} == 0)); then
  restorable_log "no postgres sources configured; nothing to do"
fi

for i in "${!RESTORABLE_PG_DATABASE[@]}"; do
  if ! backup_database "$i"; then
    restorable_record_failure "database ${RESTORABLE_PG_DATABASE[i]}"
    restorable_metrics_item postgres "${RESTORABLE_PG_DATABASE[i]}" fail
  fi
done

if [[ -n $GLOBALS_PID ]]; then
  RESTORABLE_STAGE=globals
  wait "$GLOBALS_PID" || true
  RESTORABLE_BG_PIDS=()
  globals_result=()
  if [[ -f $RESTORABLE_RUN_DIR/globals.result ]]; then mapfile -t globals_result <"$RESTORABLE_RUN_DIR/globals.result"; fi
  if [[ ${globals_result[0]:-1} != 0 ]]; then
    RESTORABLE_ERROR_STAGE=${globals_result[1]:-globals}
    RESTORABLE_ERROR_REASON=${globals_result[2]:-the globals job ended without a result}
    restorable_record_failure globals
    restorable_metrics_item globals "" fail
  fi
fi

restorable_finish
