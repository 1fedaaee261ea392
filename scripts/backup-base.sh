#!/bin/bash
# restorable backup-base: a physical base backup of every PITR cluster to the bucket.
#
# For each cluster (sources on one cluster share it): pg_basebackup -D - -Ft -X fetch (one tar
# with the WAL it needs, so each base backup restores on its own; single tablespace) through the
# cluster's access mode (compose | container | local, like pg_dump: inside the container over its
# own socket, where the image's pg_hba lets replication in)
#   | zstd | [age -r <recipients>] | tee (sha256, size) | aws s3 cp - s3://<bucket>/<key>
# streamed with no local copy, into the tier the tier rule calls for (lib.sh restorable_tier); then the manifest, uploaded
# last and only when every stage exited 0. A base backup exists only when its manifest exists.
# A failing cluster does not stop the others; the run then fails naming the first failure.
#
# Keys (contract):
#   <host>/<tier>/base/<cluster>/<stamp>.tar.zst[.age]  + <stamp>.manifest.json
# The manifest records timeline, start and stop LSN, system identifier, server version, the WAL
# segment size (walSegmentBytes), size and sha256 of the uploaded object.
#
# The user needs the REPLICATION attribute (or superuser) and a `replication` line in pg_hba.conf
# for the way it connects (the official image has one for the local socket).
#
# Usage: backup-base       (no arguments; config from RESTORABLE_CONFIG or the installed path)
# Exit codes: 0 success, 1 a stage failed, 2 usage/config/credentials error, 3 another run holds the lock.
# On failure the last stderr line is "<time> restorable backup-base: FAILED at stage <stage>: <reason>"
# with stage one of: config, lock, credentials, preflight, connect, basebackup, compress, encrypt,
# hash, upload, manifest.
# shellcheck disable=SC2154  # RESTORABLE_* settings come from the sourced config and credentials
# shellcheck disable=SC2317  # functions run indirectly, through restorable_try / restorable_stream
set -euo pipefail

RESTORABLE_SELF_DIR=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd -P)
# shellcheck source=lib.sh
. "$RESTORABLE_SELF_DIR/lib.sh"
# shellcheck source=lib-pitr.sh
. "$RESTORABLE_SELF_DIR/lib-pitr.sh"

restorable_no_args "backup-base" "${BASH_SOURCE[0]}" "$@"

RESTORABLE_PITR_CLUSTER=() RESTORABLE_PITR_SOURCE=()
restorable_init backup-base
restorable_lock backup-base
restorable_ping start
restorable_load_credentials

# One row: server version | data size of all databases (bytes; bounds the tar's size) | bootstrap
# superuser | WAL segment size in bytes (restore reads the archive's segment names with it).
BASE_FACTS_SQL="SELECT split_part(current_setting('server_version'), ' ', 1)
  || '|' || (SELECT sum(pg_database_size(oid)) FROM pg_database)::bigint::text
  || '|' || (SELECT rolname FROM pg_roles WHERE oid = 10)
  || '|' || ($RESTORABLE_PITR_SEGSIZE_SQL)::text"

# base_producer SOURCE: the tar stream on stdout. pg_basebackup's progress lines (-v: start and
# stop LSN) go to a file of the run; on failure they are repeated on stderr for the reason.
base_producer() {
  local i=$1 rc=0
  restorable_pg "$i" pg_basebackup -w -D - -Ft -X fetch -c fast -v \
    -l "restorable $RESTORABLE_STAMP" 2>"$RESTORABLE_RUN_DIR/basebackup.$i.err" || rc=$?
  if ((rc != 0)); then grep -v '^pg_basebackup: \(initiating\|checkpoint completed\|write-ahead log start\)' "$RESTORABLE_RUN_DIR/basebackup.$i.err" >&2 || true; fi
  return "$rc"
}

# base_identify SOURCE: "systemid|timeline" from IDENTIFY_SYSTEM on a replication connection
# (the same privilege pg_basebackup needs, so this also proves the replication login works).
base_identify() {
  local i=$1 db=${RESTORABLE_PG_DATABASE[$1]}
  restorable_pg "$i" psql -X -w -A -t -q -F '|' -v ON_ERROR_STOP=1 -d "dbname=$db replication=database" -c IDENTIFY_SYSTEM
}

base_backup_cluster() {
  local c=$1 started=$EPOCHREALTIME
  local name=${RESTORABLE_PITR_CLUSTER[c]} i=${RESTORABLE_PITR_SOURCE[c]}
  local db=${RESTORABLE_PG_DATABASE[i]}
  # The tier from the restore points of this cluster's base backups (lib.sh's tier rule).
  restorable_item_keys "base/$name" tar.zst || return 1
  local key=$RESTORABLE_ITEM_KEY manifest=$RESTORABLE_ITEM_MANIFEST
  restorable_log "cluster $name ($(restorable_pg_describe "$i")): base backup to $(restorable_s3_url "$key")"

  local facts version size superuser segbytes ident sysid timeline
  restorable_try connect restorable_pg "$i" psql -X -w -A -t -q -v ON_ERROR_STOP=1 -d "$db" \
    -c "$BASE_FACTS_SQL" >"$RESTORABLE_RUN_DIR/facts" || return 1
  facts=$(grep -m1 '|' "$RESTORABLE_RUN_DIR/facts" || true)
  IFS='|' read -r version size superuser segbytes <<<"$facts"
  if [[ -z $version || ! $size =~ ^[0-9]+$ || ! $segbytes =~ ^[1-9][0-9]*$ ]]; then
    RESTORABLE_ERROR_STAGE=connect
    RESTORABLE_ERROR_REASON="unexpected answer from the server: ${facts:0:200}"
    return 1
  fi
  restorable_try connect base_identify "$i" >"$RESTORABLE_RUN_DIR/ident" || {
    RESTORABLE_ERROR_REASON="no replication connection as ${RESTORABLE_PG_USER[i]} (it needs the REPLICATION attribute and a replication line in pg_hba.conf): $RESTORABLE_ERROR_REASON"
    return 1
  }
  ident=$(grep -m1 '|' "$RESTORABLE_RUN_DIR/ident" || true)
  IFS='|' read -r sysid timeline _ <<<"$ident"
  if [[ ! $sysid =~ ^[0-9]+$ || ! $timeline =~ ^[0-9]+$ ]]; then
    RESTORABLE_ERROR_STAGE=connect
    RESTORABLE_ERROR_REASON="unexpected IDENTIFY_SYSTEM answer: ${ident:0:200}"
    return 1
  fi

  # The tar is at most the data size plus the WAL written meanwhile: 2x (+1 GiB) as the part-size hint.
  restorable_stream "$key" "$((size * 2 + 1073741824))" basebackup pg_basebackup base_producer "$i" || return 1

  local err="$RESTORABLE_RUN_DIR/basebackup.$i.err" start_lsn stop_lsn start_tli
  start_lsn=$(sed -n 's/^pg_basebackup: write-ahead log start point: \([0-9A-F]*\/[0-9A-F]*\) on timeline \([0-9]*\).*/\1/p' "$err" | head -n1)
  start_tli=$(sed -n 's/^pg_basebackup: write-ahead log start point: [0-9A-F]*\/[0-9A-F]* on timeline \([0-9]*\).*/\1/p' "$err" | head -n1)
  stop_lsn=$(sed -n 's/^pg_basebackup: write-ahead log end point: \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' "$err" | head -n1)
  if [[ -z $start_lsn || -z $stop_lsn ]]; then
    RESTORABLE_ERROR_STAGE=basebackup
    RESTORABLE_ERROR_REASON="pg_basebackup did not report its start and stop LSN: $(restorable_summarize_err "$err" "no output")"
    return 1
  fi

  local extra
  extra="\"cluster\": $(restorable_json_str "$name"),"
  extra+=" \"source\": $(restorable_pg_source_json "$i"),"
  extra+=" \"serverVersion\": $(restorable_json_str "$version"),"
  extra+=" \"systemIdentifier\": $(restorable_json_str "$sysid"),"
  extra+=" \"superuser\": $(restorable_json_str "$superuser"),"
  extra+=" \"walSegmentBytes\": $segbytes,"
  extra+=" \"timeline\": ${start_tli:-$timeline},"
  extra+=" \"startLsn\": $(restorable_json_str "$start_lsn"),"
  extra+=" \"stopLsn\": $(restorable_json_str "$stop_lsn"),"
  extra+=" \"walIncluded\": true,"
  extra+=" \"walPrefix\": $(restorable_json_str "${RESTORABLE_PREFIX}wal/$name/")"
  restorable_try manifest restorable_s3_put_text "$manifest" application/json \
    "$(restorable_manifest base "$key" "$RESTORABLE_STREAM_SIZE" "$RESTORABLE_STREAM_SHA256" tar "$extra" "$started")" || return 1
  restorable_log "cluster $name: done, $RESTORABLE_STREAM_SIZE bytes, LSN $start_lsn..$stop_lsn on timeline ${start_tli:-$timeline}, sha256 $RESTORABLE_STREAM_SHA256, manifest $(restorable_s3_url "$manifest")"
}

# ------------------------------------------------------------------------------------------ main

restorable_log "run $RESTORABLE_STAMP into $(restorable_s3_url "$RESTORABLE_PREFIX"): ${#RESTORABLE_PITR_CLUSTER[@]} cluster(s)"
restorable_preflight aws zstd sha256sum flock curl
if ((${#RESTORABLE_PITR_CLUSTER[@]} == 0)); then
  restorable_fail config "PITR is not configured for host $RESTORABLE_HOST (no pitr section): no cluster to back up" 2
fi
for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do
  if ! base_backup_cluster "$c"; then
    restorable_record_failure "cluster ${RESTORABLE_PITR_CLUSTER[c]}"
  fi
done
restorable_finish
