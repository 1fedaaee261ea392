#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# restore — restore a database, the roles (globals) or a Docker volume from a manifest-backed
# backup in the bucket. Installed by restorable as <scriptsDir>/restore.
#
# Usage:
#   restore --list [--database NAME | --globals | --volume NAME] [--json]
#   restore --database NAME [--at DATE [--dump]] [--target SPEC] [--target-database NAME] [--user ROLE]
#           [--force] [--no-owner] [--identity FILE] [--dry-run]
#   restore --globals [--at DATE] [--target SPEC] [--user ROLE] [--identity FILE] [--dry-run]
#   restore --volume NAME [--at DATE] [--target-volume NAME] [--force] [--identity FILE] [--dry-run]
#   restore (--database NAME | --globals | --volume NAME) [--at DATE] --fetch-only DIR [--identity FILE]
#   restore --cluster NAME --at DATE|latest (--data-dir DIR | --target-volume VOL [--force]) [--image IMG]
#           [--user ROLE] [--identity FILE] [--dry-run]
#
# Restore points are the backups that have a manifest (<stamp>.manifest.json beside the object);
# an object without one (an interrupted upload) is never used. The newest one is picked, or with
# --at DATE the newest one taken at or before DATE (never a later one: it could contain the damage
# being undone). DATE: 2026-11-24T14:00:00Z, "2026-11-24 14:00" (UTC), 20261124T140000Z, or
# 2026-11-24 (= the end of that UTC day).
#
# Point in time (PITR): for a database whose cluster has a WAL archive (hosts[].pitr), --at DATE
# recovers the database as it was at exactly that second: the newest base backup at or before it
# plus the archived WAL up to it are recovered into a throwaway server (every object's sha256
# verified; a missing or corrupt WAL segment fails the restore naming it), then the one database
# is copied into the target with the rules below (pg_dump -Fc | pg_restore). It reports the time
# actually reached (the last replayed commit) next to the time asked for. A time the archive does
# not cover is refused, naming the nearest dump restore point; --dump restores that dump instead
# (the restore point at or before DATE, as without PITR). See lib-pitr-restore.sh. --list shows
# each archived cluster's window next to the dump restore points. --cluster NAME --data-dir DIR is
# the disaster recovery of a whole archived cluster (roles, every database, settings) into a new
# data directory, to DATE or to the latest archived point; it ends promoted (a new timeline) and
# stopped cleanly, ready to start (README "Disaster: the whole server is gone"). --target-volume VOL
# recovers it into a Docker volume instead: the data directory of a stopped compose service, owned
# by the image's postgres user, mode 0700 (a volume a running container uses is refused; a
# non-empty one needs --force, which first moves its content into a new volume
# VOL.replaced-<stamp>). The recovery server is the host's PostgreSQL server binaries of the
# cluster's major version, or a container from --image IMG (default: the drill image,
# RESTORABLE_DRILL_IMAGE) for a volume, when --image is given, or when the host has no such
# binaries. --user ROLE: the cluster's superuser to connect as (default postgres, then the
# configured users).
#
# Every restore: download the manifest and the object, verify the object's sha256 (and size)
# against the manifest, check that it decrypts (age identity: --identity FILE or
# RESTORABLE_AGE_IDENTITY) and decompresses into the expected format, and only then touch the
# target; a database is then streamed `age -d | zstd -d | pg_restore` (no decompressed copy on
# disk). It says what it will do before, and what it did after.
#
# Database targets (--target SPEC; default: the configured source of that database):
#   compose:PROJECT_DIR:SERVICE   the service's container (docker compose / docker-compose)
#   container:NAME                a running container (its own pg_restore/psql over its socket)
#   local:HOST[:PORT]             a server reached with the host's pg_restore/psql (HOST may be a
#                                 socket directory); port 5432 by default
#   postgresql://USER@HOST:PORT   a libpq URL without password and without database
# --user ROLE connects as ROLE (default: the configured user, else postgres). Passwords come from
# the credentials file for a configured source, else from PGPASSWORD in the environment or
# ~/.pgpass; never from the command line.
#
# A database is restored into --target-database (default: its own name), created when missing,
# with pg_restore --single-transaction --exit-on-error: all or nothing; a database this run created
# is dropped again when the restore fails. A target database that already holds objects is refused
# unless --force, which drops and recreates the objects in the backup (pg_restore --clean
# --if-exists, still one transaction; objects not in the backup are left alone). After the restore
# the table list is compared with the manifest's. Ownership and privileges are restored (restore
# the globals first on a new server); --no-owner skips them (objects then belong to the --user).
#
# --globals restores roles (pg_dumpall --globals-only) into the target's postgres database,
# creating missing roles and updating existing ones; it needs a superuser. Default target: the
# first configured postgres source.
#
# --volume restores a Docker volume (--target-volume, default: its own name; created when missing)
# with RESTORABLE_VOLUME_IMAGE's tar. A non-empty volume is refused unless --force, which first
# deletes the volume's current content so that it ends up exactly as backed up. When the backup
# has a listing (backup-volumes records one), the tarball is first extracted into a labelled
# staging volume and compared with it entry by entry, before the target is touched: the first
# difference fails the restore at stage compare naming the volume and the path, and the target is
# left as it was. A backup without a listing is restored with "content not verified".
#
# --fetch-only DIR downloads, verifies, decrypts and decompresses into DIR (the plain dump / SQL /
# tar plus the manifest) without restoring anything: for manual restores and inspection.
# --dry-run stops after saying what it would do. --list shows restore points per kind and tier with
# their age and size (--json: one JSON object per line).
#
# Environment: RESTORABLE_CONFIG (path of restorable.conf), RESTORABLE_NOW (clock for ages),
# RESTORABLE_AGE_IDENTITY, TMPDIR (where the downloaded object is staged: room for the compressed
# object; volumes and --fetch-only also need room for the decompressed tar/dump).
#
# Exit codes: 0 done; 1 failed (one line on stderr: "restorable restore: FAILED at stage <stage>:
# <reason>"; stages: find, target, download, verify, decrypt, decompress, inspect, listing, compare,
# restore, tables);
# 2 usage or configuration error; 3 another restore holds the lock.
set -euo pipefail

RESTORABLE_SCRIPT=restore
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

mode="" kind="" name="" at="" target="" target_db="" target_volume="" user="" identity=""
force=0 no_owner=0 dry_run=0 json=0 fetch_dir="" dump_only=0 data_dir="" image=""
restorable_traps
# Names are checked as they are read, with the config schema's rules (restorable_check_name), and quoted
# wherever they are used.
while (($#)); do
  case $1 in
    -h | --help) usage || true; exit 0 ;;
    --list) mode=list ;;
    --json) json=1 ;;
    --database) [[ $# -ge 2 ]] || restorable_usage "--database needs a name"; restorable_check_name pg "$1" "$2"; kind=postgres name=$2; shift ;;
    --globals) kind=globals name=- ;;
    --volume) [[ $# -ge 2 ]] || restorable_usage "--volume needs a name"; restorable_check_name docker "$1" "$2"; kind=volume name=$2; shift ;;
    --at) [[ $# -ge 2 ]] || restorable_usage "--at needs a date"; at=$2; shift ;;
    --target) [[ $# -ge 2 ]] || restorable_usage "--target needs a spec"; target=$2; shift ;;
    --target-database) [[ $# -ge 2 ]] || restorable_usage "--target-database needs a name"; restorable_check_name pg "$1" "$2"; target_db=$2; shift ;;
    --target-volume) [[ $# -ge 2 ]] || restorable_usage "--target-volume needs a name"; restorable_check_name docker "$1" "$2"; target_volume=$2; shift ;;
    --user) [[ $# -ge 2 ]] || restorable_usage "--user needs a role"; restorable_check_name pg "$1" "$2"; user=$2; shift ;;
    --identity) [[ $# -ge 2 ]] || restorable_usage "--identity needs a file"; identity=$2; shift ;;
    --force) force=1 ;;
    --dump) dump_only=1 ;;
    --cluster) [[ $# -ge 2 ]] || restorable_usage "--cluster needs a name"; restorable_check_name docker "$1" "$2"; kind=cluster name=$2; shift ;;
    --data-dir) [[ $# -ge 2 ]] || restorable_usage "--data-dir needs a directory"; data_dir=$2; shift ;;
    --image) [[ $# -ge 2 && -n $2 && $2 != -* ]] || restorable_usage "--image needs an image (e.g. postgres:16)"; image=$2; shift ;;
    --no-owner) no_owner=1 ;;
    --dry-run) dry_run=1 ;;
    --fetch-only) [[ $# -ge 2 ]] || restorable_usage "--fetch-only needs a directory"; fetch_dir=$2; shift ;;
    *) restorable_usage "unknown argument: $1" ;;
  esac
  shift
done
if [[ $mode != list ]]; then
  [[ -n $kind ]] || restorable_usage "say what to restore: --database NAME, --globals or --volume NAME (or --list)"
  mode=restore
fi
[[ -z $target_db || $kind == postgres ]] || restorable_usage "--target-database is for --database"
[[ -z $target_volume || $kind == volume || $kind == cluster ]] || restorable_usage "--target-volume is for --volume and --cluster"
[[ $force -eq 0 || $kind != globals ]] || restorable_usage "--force is for --database, --volume and --cluster --target-volume"
[[ -z $image || $kind == cluster ]] || restorable_usage "--image is for --cluster"
at_epoch=""
if [[ $kind == cluster ]]; then
  [[ -n $at ]] || restorable_usage "--cluster needs --at DATE or --at latest"
  [[ -n $data_dir$target_volume && ( -z $data_dir || -z $target_volume ) ]] || restorable_usage "--cluster needs --data-dir DIR (a new data directory) or --target-volume VOL (a Docker volume), not both"
  [[ -z $target$target_db$fetch_dir ]] || restorable_usage "--cluster takes no --target, --target-database or --fetch-only"
  [[ $force -eq 0 || -n $target_volume ]] || restorable_usage "--force is for --cluster --target-volume (a data directory is never overwritten)"
  if [[ $at == latest ]]; then at_epoch=latest at=""; fi
fi
if [[ -n $at ]]; then at_epoch=$(restorable_parse_date "$at" 2>/dev/null) || restorable_usage "--at \"$at\" is not a date (e.g. 2026-11-24T14:00:00Z)"; fi

restorable_load_config
restorable_load_credentials optional
identity=${identity:-$RESTORABLE_AGE_IDENTITY}
# Point in time (lib-pitr-restore.sh): --at on a database whose cluster has a WAL archive.
pitr_cluster=""
if [[ $kind == postgres && -n $at_epoch && $dump_only -eq 0 && -z $fetch_dir && $mode == restore ]]; then pitr_cluster=$(restorable_pitr_cluster_of_db "$name"); fi
restorable_tmp_init
now=$(restorable_now)

# ---- find ---------------------------------------------------------------------------------------

restorable_stage find
restorable_list_bucket "$RESTORABLE_TMP/work/listing.jsonl"
points="$RESTORABLE_TMP/work/points.tsv"
restorable_restore_points "$RESTORABLE_TMP/work/listing.jsonl" >"$points"

if [[ $mode == list ]]; then
  filter() { awk -F '\t' -v k="$kind" -v n="$name" '(k == "" || ($1 == k && $2 == n))' "$points"; }
  if [[ $json -eq 1 ]]; then
    filter | while IFS=$'\t' read -r k n t s m o z; do
      created=$(restorable_stamp_epoch "$s")
      jq -cn --arg kind "$k" --arg name "$n" --arg tier "$t" --arg stamp "$s" --arg manifest "$m" --arg object "$o" \
        --arg size "$z" --argjson age "$((now - created))" --arg createdAt "$(restorable_iso "$created")" \
        '{kind: $kind, name: (if $name == "-" then null else $name end), tier: $tier, stamp: $stamp, createdAt: $createdAt,
          ageSeconds: $age, manifestKey: $manifest, objectKey: (if $object == "-" then null else $object end),
          size: (if $size == "?" then null else ($size | tonumber) end)}'
    done
    restorable_pitr_list 1 "$kind" "$name" "$RESTORABLE_TMP/work/listing.jsonl"
    exit 0
  fi
  printf 'Restore points of %s in s3://%s/%s (manifest-backed only; now %s)\n' "$RESTORABLE_HOST" "$RESTORABLE_BUCKET" "$RESTORABLE_PREFIX" "$(restorable_iso "$now")"
  if [[ ! -s $points ]] || [[ -z $(filter) ]]; then
    printf '\n  none\n'
    restorable_pitr_list 0 "$kind" "$name" "$RESTORABLE_TMP/work/listing.jsonl"
    exit 0
  fi
  filter | awk -F '\t' '{ print $1 "\t" $2 }' | sort -u | while IFS=$'\t' read -r k n; do
    if [[ $k == globals ]]; then printf '\nglobals (roles)\n'; else printf '\n%s %s\n' "$k" "$n"; fi
    printf '  %-8s %-17s %-21s %-8s %10s  %s\n' TIER STAMP CREATED AGE SIZE OBJECT
    for t in daily weekly monthly; do
      awk -F '\t' -v k="$k" -v n="$n" -v t="$t" '$1 == k && $2 == n && $3 == t' "$points" | sort -t $'\t' -k4,4r |
        while IFS=$'\t' read -r _ _ tier s _ o z; do
          created=$(restorable_stamp_epoch "$s")
          printf '  %-8s %-17s %-21s %-8s %10s  %s\n' "$tier" "$s" "$(restorable_iso "$created")" "$(restorable_human_age $((now - created)))" "$(restorable_human_size "$z")" "${o##*/}"
        done
    done
  done
  restorable_pitr_list 0 "$kind" "$name" "$RESTORABLE_TMP/work/listing.jsonl"
  exit 0
fi

# The whole cluster, for a disaster (lib-pitr-restore.sh).
if [[ $kind == cluster ]]; then restorable_pitr_restore_cluster "$name" "$at_epoch" "$data_dir" "$target_volume" "$image"; exit 0; fi
what() { case $kind in postgres) printf 'database %s' "$name" ;; globals) printf 'the globals (roles)' ;; volume) printf 'volume %s' "$name" ;; esac; }
work="$RESTORABLE_TMP/work"
if [[ -n $pitr_cluster ]]; then
  # Point in time: a base backup and the WAL instead of a dump restore point (lib-pitr-restore.sh).
  restorable_pitr_plan_db "$pitr_cluster" "$RESTORABLE_TMP/work/listing.jsonl"
  point=pitr
else
point=$(restorable_pick "$points" "$kind" "$name" "$at_epoch")
fi
if [[ -z $point ]]; then
  any=$(restorable_pick "$points" "$kind" "$name")
  if [[ -n $at_epoch && -n $any ]]; then
    oldest=$(awk -F '\t' -v k="$kind" -v n="$name" '$1 == k && $2 == n { print $4; exit }' "$points")
    restorable_die "no restore point of $(what) at or before $(restorable_iso "$at_epoch"); the oldest is $oldest"
  fi
  restorable_die "no manifest-backed backup of $(what) under s3://$RESTORABLE_BUCKET/$RESTORABLE_PREFIX"
fi
IFS=$'\t' read -r _ _ p_tier p_stamp p_manifest p_object p_size <<<"$point"
work="$RESTORABLE_TMP/work"
if [[ -z $pitr_cluster ]]; then restorable_bg_get "$p_manifest" "$work/manifest.json" 0; fi
# Start the object's download as soon as nothing speaks against it (the manifest decides which
# object is used; a wrong guess from the listing is discarded).
prefetch() { if [[ $dry_run -eq 0 && $p_object != - ]]; then RESTORABLE_T_DOWNLOAD_START=$(restorable_realtime); restorable_bg_get "$p_object" "$work/object" "$p_size"; fi; }
describe_point() {
  restorable_fetch_manifest "$p_manifest" "$kind" "$name" "$work"
  restorable_stage find
  local created_epoch
  created_epoch=$(date -u -d "${RESTORABLE_MF_CREATED:-x}" +%s 2>/dev/null || restorable_stamp_epoch "$p_stamp")
  m_key=$RESTORABLE_MF_KEY
  point_desc="$p_tier restore point $p_stamp (created $(restorable_iso "$created_epoch"), $(restorable_human_age $((now - created_epoch))) ago; $(restorable_human_size "${RESTORABLE_MF_SIZE:-?}"), sha256 ${RESTORABLE_MF_SHA256:0:12}…, encryption $RESTORABLE_MF_ENC)"
}
say_plan_tail() {
  if [[ $dry_run -eq 1 ]]; then restorable_say "Dry run: nothing restored."; exit 0; fi
}

# ---- fetch only ---------------------------------------------------------------------------------

if [[ -n $fetch_dir ]]; then
  mkdir -p -- "$fetch_dir" || restorable_die "cannot create $fetch_dir"
  prefetch
  describe_point
  case $kind in postgres) ext=dump base="$name" ;; globals) ext=sql base=globals ;; volume) ext=tar base="$name" ;; esac
  out="$fetch_dir/$p_stamp.$base.$ext"
  restorable_say "Will fetch $(what) from s3://$RESTORABLE_BUCKET/$m_key"
  restorable_say "  $point_desc"
  restorable_say "  into $out (verified, decrypted, decompressed) and $fetch_dir/$p_stamp.$base.manifest.json"
  [[ $dry_run -eq 0 ]] || { restorable_say "Dry run: nothing fetched."; exit 0; }
  restorable_fetch_object "$work" "$identity"
  restorable_decode_to "$work/artifact"
  restorable_stage fetch
  mv -- "$work/artifact" "$out" || restorable_die "cannot write $out"
  cp -- "$RESTORABLE_MF" "$fetch_dir/$p_stamp.$base.manifest.json" || restorable_die "cannot write the manifest to $fetch_dir"
  restorable_say "Fetched $(what): $out ($(restorable_human_size "$(stat -c %s "$out")")), sha256 of the object verified against the manifest."
  exit 0
fi

# ---- target -------------------------------------------------------------------------------------

restorable_lock restore optional
restorable_stage target
cfg_index() { # index of the configured postgres source for database $1, or nothing
  local i
  for i in "${!RESTORABLE_PG_DATABASE[@]}"; do
    if [[ ${RESTORABLE_PG_DATABASE[$i]} == "$1" ]]; then printf '%s\n' "$i"; return 0; fi
  done
  return 0
}
resolve_db_target() {
  local spec=$1 idx=""
  if [[ -z $spec ]]; then
    if [[ $kind == postgres ]]; then idx=$(cfg_index "$name"); fi
    if [[ $kind == globals && ${#RESTORABLE_PG_DATABASE[@]} -gt 0 ]]; then idx=0; fi
    [[ -n $idx ]] || restorable_usage "$(what) has no configured source on $RESTORABLE_HOST: give --target (compose:DIR:SERVICE, container:NAME, local:HOST[:PORT] or postgresql://USER@HOST:PORT)"
    local tu=${user:-${RESTORABLE_PG_USER[$idx]:-postgres}} pw=${RESTORABLE_PG_PASSWORD[$idx]:-}
    # shellcheck disable=SC2031 # (lib.sh sets it in a subshell of its own; this is ours)
    if [[ -n $pw ]]; then export PGPASSWORD=$pw; fi
    case ${RESTORABLE_PG_VIA[$idx]:-} in
      compose) restorable_target_compose "${RESTORABLE_PG_PROJECT[$idx]}" "${RESTORABLE_PG_SERVICE[$idx]}" "$tu" ;;
      container) restorable_target_container "${RESTORABLE_PG_CONTAINER[$idx]}" "$tu" ;;
      local) restorable_target_local "${RESTORABLE_PG_HOST[$idx]:-127.0.0.1}" "${RESTORABLE_PG_PORT[$idx]:-5432}" "$tu" ;;
      *) restorable_config_error "RESTORABLE_PG_VIA[$idx] must be compose, container or local" ;;
    esac
    return 0
  fi
  if [[ -n $RESTORABLE_ENV_PGPASSWORD ]]; then export PGPASSWORD=$RESTORABLE_ENV_PGPASSWORD; fi
  case $spec in
    compose:*:*)
      local rest=${spec#compose:}
      restorable_target_compose "${rest%:*}" "${rest##*:}" "${user:-postgres}" ;;
    container:?*) restorable_target_container "${spec#container:}" "${user:-postgres}" ;;
    local:?*)
      local hp=${spec#local:} h p=5432
      if [[ $hp =~ ^(.*):([0-9]+)$ ]]; then h=${BASH_REMATCH[1]} p=${BASH_REMATCH[2]}; else h=$hp; fi
      restorable_target_local "$h" "$p" "${user:-postgres}" ;;
    postgres://* | postgresql://*)
      local rest=${spec#*://}
      rest=${rest%%/*}
      if [[ $rest == *@* && ${rest%@*} == *:* ]]; then
        restorable_usage "--target URL contains a password: put it in PGPASSWORD or ~/.pgpass, never on the command line"
      fi
      [[ $spec != *://*/* || ${spec#*://*/} == "" ]] || restorable_usage "--target URL must not name a database (use --target-database)"
      [[ $spec != *\?* ]] || restorable_usage "--target URL must not carry parameters"
      restorable_target_url "${spec%/}" "$user" ;;
    *) restorable_usage "--target \"$spec\" is not compose:DIR:SERVICE, container:NAME, local:HOST[:PORT] or postgresql://USER@HOST:PORT" ;;
  esac
}
err="$work/target.err"

case $kind in
# ------------------------------------------------------------------------------------------------
postgres)
  db=${target_db:-$name}
  resolve_db_target "$target"
  exists=$(restorable_sql postgres "SELECT 1 FROM pg_database WHERE datname = $(restorable_sql_literal "$db")" 2>"$err") ||
    restorable_die "cannot connect to $RESTORABLE_T_DESC: $(restorable_error_line "$err")"
  state="does not exist yet: it will be created"
  if [[ $exists == 1 ]]; then
    objects=$(restorable_sql "$db" "$RESTORABLE_NONEMPTY_SQL" 2>"$err") || restorable_die "cannot inspect database $db on $RESTORABLE_T_DESC: $(restorable_last_line "$err")"
    if [[ $objects -gt 0 ]]; then
      if [[ $force -eq 0 ]]; then
        restorable_die "database $db on $RESTORABLE_T_DESC is not empty ($objects objects); refusing to restore into it without --force (or restore into another database with --target-database)"
      fi
      state="is NOT empty ($objects objects): --force, the objects in the backup will be dropped and recreated"
    else
      state="exists and is empty"
    fi
  fi
  if [[ -n $pitr_cluster ]]; then restorable_pitr_restore_db "$pitr_cluster"; exit 0; fi
  prefetch
  describe_point
  restorable_say "Will restore database $name from s3://$RESTORABLE_BUCKET/$m_key"
  restorable_say "  $point_desc"
  restorable_say "  into database $db on $RESTORABLE_T_DESC; it $state"
  restorable_say "  with pg_restore --single-transaction --exit-on-error$([[ $force -eq 1 ]] && printf ' --clean --if-exists')$([[ $no_owner -eq 1 ]] && printf ' --no-owner --no-privileges')"
  say_plan_tail
  t_start=$(restorable_realtime)
  restorable_fetch_object "$work" "$identity"

  restorable_stage inspect
  [[ ${RESTORABLE_HEAD:0:5} == PGDMP ]] || restorable_die "$m_key is not a pg_dump custom-format archive"

  restorable_stage restore
  t0=$(restorable_realtime)
  created=0
  if [[ $exists != 1 ]]; then
    restorable_sql postgres "CREATE DATABASE $(restorable_sql_ident "$db") TEMPLATE template0" >/dev/null 2>"$err" ||
      restorable_die "cannot create database $db on $RESTORABLE_T_DESC: $(restorable_last_line "$err")"
    created=1
    restorable_log "created database $db"
  fi
  opts=(--single-transaction --exit-on-error)
  if [[ $force -eq 1 ]]; then opts+=(--clean --if-exists); fi
  if [[ $no_owner -eq 1 ]]; then opts+=(--no-owner --no-privileges); fi
  # Decrypt | decompress | pg_restore, streamed: no decompressed copy on disk.
  if ! restorable_run restorable_decode_into "$work" restorable_tgt_run pg_restore "$db" "${opts[@]}"; then
    restorable_log_file_tail "$work/restore.err" 20
    reason=$(restorable_decode_into_reason "$work" pg_restore)
    if [[ $created -eq 1 ]]; then
      restorable_sql postgres "DROP DATABASE IF EXISTS $(restorable_sql_ident "$db")" >/dev/null 2>&1 && restorable_log "dropped database $db again (this run created it)"
    fi
    restorable_die "restoring into $db failed, nothing was committed: $reason"
  fi
  t_restore=$(restorable_elapsed "$t0")

  restorable_stage tables
  restorable_manifest_tables "$RESTORABLE_MF" >"$work/expected"
  restorable_sql "$db" "$RESTORABLE_TABLES_SQL" >"$work/actual" 2>"$err" || restorable_die "cannot list the restored tables: $(restorable_last_line "$err")"
  sort -o "$work/actual" "$work/actual"
  if ! diff_reason=$(restorable_compare_tables "$work/expected" "$work/actual"); then
    restorable_die "restored database $db differs from the manifest: $diff_reason"
  fi
  ntables=$(wc -l <"$work/actual")
  restorable_say "Restored database $name into $db on $RESTORABLE_T_DESC from $p_stamp ($p_tier): $ntables tables, as listed in the manifest; $(restorable_elapsed "$t_start") s (download $RESTORABLE_T_DOWNLOAD s, verify $RESTORABLE_T_VERIFY s, decrypt/decompress/restore $t_restore s)."
  ;;
# ------------------------------------------------------------------------------------------------
globals)
  resolve_db_target "$target"
  super=$(restorable_sql postgres "SELECT rolsuper FROM pg_roles WHERE rolname = current_user" 2>"$err") || restorable_die "cannot connect to $RESTORABLE_T_DESC: $(restorable_error_line "$err")"
  [[ $super == t ]] || restorable_die "restoring roles needs a superuser; $RESTORABLE_T_USER on $RESTORABLE_T_DESC is not one (use --user)"
  prefetch
  describe_point
  restorable_say "Will restore the globals (roles) from s3://$RESTORABLE_BUCKET/$m_key"
  restorable_say "  $point_desc"
  restorable_say "  into $RESTORABLE_T_DESC: missing roles are created, existing ones updated (attributes, passwords, memberships)"
  say_plan_tail
  t_start=$(restorable_realtime)
  restorable_fetch_object "$work" "$identity"
  restorable_decode_to "$work/globals.raw"
  RESTORABLE_ART="$work/globals.raw"
  restorable_stage inspect
  restorable_globals_sql "$RESTORABLE_ART" "$work/globals.sql"
  restorable_stage restore
  if ! restorable_run restorable_tgt_run psql postgres -X -q -v ON_ERROR_STOP=1 -f - <"$work/globals.sql" >"$work/restore.out" 2>"$work/restore.err"; then
    restorable_log_file_tail "$work/restore.err" 20
    restorable_die "restoring the globals failed: $(restorable_error_line "$work/restore.err")"
  fi
  nroles=$RESTORABLE_GLOBALS_ROLES
  restorable_say "Restored the globals from $p_stamp ($p_tier) into $RESTORABLE_T_DESC: $nroles roles; $(restorable_elapsed "$t_start") s."
  ;;
# ------------------------------------------------------------------------------------------------
volume)
  vol=${target_volume:-$name}
  docker info >/dev/null 2>"$err" || restorable_die "docker is not reachable: $(restorable_last_line "$err")"
  vexists=0
  if docker volume inspect "$vol" >/dev/null 2>&1; then vexists=1; fi
  state="does not exist yet: it will be created"
  if [[ $vexists -eq 1 ]]; then
    first=$(docker run --rm --network none -v "$vol:/data:ro" "$RESTORABLE_VOLUME_IMAGE" ls -A /data 2>"$err") ||
      restorable_die "cannot look into volume $vol with $RESTORABLE_VOLUME_IMAGE: $(restorable_last_line "$err")"
    if [[ -n $first ]]; then
      [[ $force -eq 1 ]] || restorable_die "volume $vol is not empty; refusing to restore into it without --force (or use --target-volume)"
      state="is NOT empty: --force, its current content will be deleted first"
    else
      state="exists and is empty"
    fi
  fi
  prefetch
  describe_point
  restorable_say "Will restore volume $name from s3://$RESTORABLE_BUCKET/$m_key"
  restorable_say "  $point_desc"
  restorable_say "  into Docker volume $vol (with $RESTORABLE_VOLUME_IMAGE); it $state"
  say_plan_tail
  t_start=$(restorable_realtime)
  restorable_fetch_object "$work" "$identity"
  restorable_decode_to "$work/volume.tar"
  RESTORABLE_ART="$work/volume.tar"
  restorable_stage inspect
  tar -tf "$RESTORABLE_ART" >"$work/toc" 2>"$err" || restorable_die "the object is not a readable tar archive: $(restorable_last_line "$err")"
  nfiles=$(wc -l <"$work/toc")
  # Compare with the listing recorded at backup time, in a staging volume (the drill's helpers),
  # before anything of the target is touched.
  restorable_stage listing
  lrc=0
  restorable_vol_fetch_listing "$m_key" "$work" || lrc=$?
  ((lrc == 0 || lrc == 3)) || restorable_die "cannot fetch the listing of $RESTORABLE_MF_KEY (status $lrc)"
  verified="content not verified: this backup has no listing (made before backup-volumes recorded one)"
  if ((lrc == 0)); then
    RESTORABLE_RUN_ID="restore-$(restorable_stamp "$now")-$$" RESTORABLE_VOL_USED=1
    stage_vol="restorable-restore-$$-staging"
    restorable_vol_create "$stage_vol" 2>"$err" || restorable_die "cannot create the staging volume $stage_vol: $(restorable_last_line "$err")"
    if ! restorable_run restorable_vol_run -i -v "$stage_vol:/data" "$RESTORABLE_VOLUME_IMAGE" tar --numeric-owner -C /data -xf - <"$RESTORABLE_ART" 2>"$work/restore.err"; then
      restorable_log_file_tail "$work/restore.err" 10
      restorable_die "extracting into the staging volume $stage_vol failed: $(restorable_last_line "$work/restore.err")"
    fi
    restorable_vol_listing "$stage_vol" "$work/listing.restored" ||
      restorable_die "cannot list the extracted volume with $RESTORABLE_VOLUME_IMAGE: $(restorable_last_line "$work/listing.restored.err")"
    restorable_stage compare
    listed=$(($(grep -vc '^#' "$work/listing.expected" || true)))
    if [[ -n $RESTORABLE_VOL_LENTRIES && $RESTORABLE_VOL_LENTRIES != "$listed" ]]; then
      restorable_die "volume $name: the listing $RESTORABLE_VOL_LKEY holds $listed entries, its manifest says $RESTORABLE_VOL_LENTRIES"
    fi
    if ! first=$(restorable_vol_compare "$work/listing.expected" "$work/listing.restored"); then
      [[ -n $first ]] || restorable_die "volume $name: cannot compare the listings"
      restorable_die "volume $name: $(restorable_vol_diff_reason "$first") (volume $vol not touched)"
    fi
    restorable_vol_remove "$stage_vol"
    verified="all $listed entries identical to the listing recorded at backup time"
  else
    restorable_log "volume $name: $verified"
  fi
  restorable_stage restore
  created=0
  if [[ $vexists -eq 0 ]]; then
    docker volume create "$vol" >/dev/null 2>"$err" || restorable_die "cannot create volume $vol: $(restorable_last_line "$err")"
    created=1
  elif [[ $force -eq 1 ]]; then
    docker run --rm --network none -v "$vol:/data" "$RESTORABLE_VOLUME_IMAGE" \
      find /data -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>"$err" || restorable_die "cannot empty volume $vol: $(restorable_last_line "$err")"
  fi
  restorable_progress_start "restore volume $name" "$(stat -c %s -- "$RESTORABLE_ART")" read "$RESTORABLE_ART"
  vrc=0
  restorable_run docker run --rm -i --network none -v "$vol:/data" "$RESTORABLE_VOLUME_IMAGE" \
    tar --numeric-owner -C /data -xf - <"$RESTORABLE_ART" 2>"$work/restore.err" || vrc=$?
  restorable_progress_stop
  if ((vrc != 0)); then
    restorable_log_file_tail "$work/restore.err" 10
    if [[ $created -eq 1 ]]; then docker volume rm "$vol" >/dev/null 2>&1 || true; fi
    restorable_die "extracting into volume $vol failed: $(restorable_last_line "$work/restore.err")"
  fi
  restorable_say "Restored volume $name into $vol from $p_stamp ($p_tier): $nfiles entries, $verified; $(restorable_elapsed "$t_start") s."
  ;;
esac
exit 0
