#!/bin/bash
# restorable pitr-uninstall: undo what the WAL archiver set up, for `pulumi destroy` (the uninstall
# command runs it after removing the crontab block, before removing the files).
#
# Stops a running wal-archiver (TERM; it stops its receivers), removes receiver containers a
# killed archiver left, and drops the replication slot it
# created on each PITR cluster, so the server no longer keeps WAL for an archiver that is gone.
# max_slot_wal_keep_size stays as set (it bounds any other slot too; reset it with
# ALTER SYSTEM RESET max_slot_wal_keep_size if you want). WAL and base backups in the bucket are
# never touched.
#
# Usage: pitr-uninstall    (no arguments)
# Exit codes: 0 done (also when PITR was never configured), 1 a slot could not be dropped or the
# archiver did not stop, 2 usage/config/credentials error.
# shellcheck disable=SC2154  # RESTORABLE_* settings come from the sourced config and credentials
set -euo pipefail

RESTORABLE_SELF_DIR=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd -P)
# shellcheck source=lib.sh
. "$RESTORABLE_SELF_DIR/lib.sh"
# shellcheck source=lib-pitr.sh
. "$RESTORABLE_SELF_DIR/lib-pitr.sh"

restorable_no_args "pitr-uninstall" "${BASH_SOURCE[0]}" "$@"
restorable_init pitr-uninstall
restorable_load_credentials

# 1. The archiver: TERM to the pid in its pid file (checked against its command line) until its
# lock is free, then the lock is held to the end: an archiver cron started just before the
# crontab block went (its pid file written after a first look) gets its TERM too, and none can
# start while the slots are dropped (a second archiver exits at once when the lock is held).
RESTORABLE_STAGE=stop
pidfile="$RESTORABLE_STATE_DIR/wal-archiver.pid"
lockfile="$RESTORABLE_STATE_DIR/wal-archiver.lock"
if [[ -d $RESTORABLE_STATE_DIR ]]; then
  exec {lockfd}>>"$lockfile"
  termed=""
  for ((try = 0; try < 60; try++)); do
    if flock -n "$lockfd"; then break; fi
    pid=$(cat -- "$pidfile" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ && " $termed " != *" $pid "* ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'wal-archiver'; then
      restorable_log "stopping the WAL archiver (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      termed+=" $pid"
    fi
    sleep 0.5
  done
  flock -n "$lockfd" || restorable_fail stop "the WAL archiver still holds $lockfile after 30 s"
fi
rm -f -- "$pidfile"
# Receiver containers (compose/container sources) a killed archiver left behind.
for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do
  if [[ ${RESTORABLE_PG_VIA[${RESTORABLE_PITR_SOURCE[c]}]} == local ]]; then continue; fi
  for id in $(restorable_pitr_sidecars "${RESTORABLE_PITR_CLUSTER[c]}"); do
    restorable_log "cluster ${RESTORABLE_PITR_CLUSTER[c]}: removing the receiver container ${id:0:12}"
    docker rm -f "$id" >/dev/null 2>&1 || restorable_fail stop "cannot remove the receiver container ${id:0:12} of cluster ${RESTORABLE_PITR_CLUSTER[c]}"
  done
done

# 2. The slots.
RESTORABLE_STAGE=slots
failed=0
for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do
  i=${RESTORABLE_PITR_SOURCE[c]} slot=${RESTORABLE_PITR_SLOT[c]}
  if restorable_try slots restorable_pg "$i" psql -X -w -A -t -q -v ON_ERROR_STOP=1 -d "${RESTORABLE_PG_DATABASE[i]}" \
    -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$slot'" >/dev/null; then
    restorable_log "cluster ${RESTORABLE_PITR_CLUSTER[c]}: replication slot $slot dropped (or already gone)"
  else
    restorable_log "cluster ${RESTORABLE_PITR_CLUSTER[c]}: cannot drop replication slot $slot: $RESTORABLE_ERROR_REASON (drop it by hand: SELECT pg_drop_replication_slot('$slot'))"
    failed=1
  fi
done
if ((failed)); then restorable_fail slots "a replication slot could not be dropped (see above); the server keeps WAL for it up to max_slot_wal_keep_size"; fi
restorable_log "done"
exit 0
