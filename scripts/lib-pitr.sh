# shellcheck shell=bash
# restorable: what the PITR parts share, sourced after lib.sh (by wal-archiver, backup-base and restore-drill).
# Installed as <scriptsDir>/lib-pitr.sh (0644).
#
# The WAL archiver writes <stateDir>/wal/<cluster>.status after every round: "<epoch> <seconds>",
# the time of the round and how long committed WAL had then been waiting to go off-site (0 when
# the archive is caught up). The drill's RPO check reads it for databases on archived clusters.

# Empty defaults (the config, sourced later, sets them; a config without PITR leaves them empty).
# shellcheck disable=SC2034
RESTORABLE_PITR_CLUSTER=() RESTORABLE_PITR_SOURCE=() RESTORABLE_PITR_SLOT=()
# shellcheck disable=SC2034  # results for the sourcing script
PITR_RPO_AGE=0 PITR_RPO_TEXT=''

# The server's WAL segment size in bytes (initdb --wal-segsize: 1 MiB .. 1 GiB, a power of two;
# 16 MiB by default). One row, one number. The archiver's segment arithmetic uses it, and
# backup-base records it in the base manifest (walSegmentBytes), where restore reads it.
# shellcheck disable=SC2034  # used by the sourcing scripts
RESTORABLE_PITR_SEGSIZE_SQL="SELECT setting::bigint * CASE unit WHEN 'MB' THEN 1048576 WHEN '8kB' THEN 8192 ELSE 1 END FROM pg_settings WHERE name = 'wal_segment_size'"

# restorable_pitr_cluster_of I: the PITR cluster name of postgres source I ("" when not archived).
restorable_pitr_cluster_of() {
  local id c
  id=$(restorable_pg_cluster_id "$1")
  for c in "${!RESTORABLE_PITR_CLUSTER[@]}"; do
    if [[ $(restorable_pg_cluster_id "${RESTORABLE_PITR_SOURCE[c]}") == "$id" ]]; then
      printf '%s' "${RESTORABLE_PITR_CLUSTER[c]}"
      return 0
    fi
  done
}

# restorable_pitr_spool CLUSTER: the archiver's spool directory (the receiver writes there).
restorable_pitr_spool() { printf '%s/wal/%s' "$RESTORABLE_STATE_DIR" "$1"; }

# restorable_pitr_sidecars CLUSTER: ids of the receiver containers (compose/container sources)
# writing into the cluster's spool, running or not: their label is the spool's path.
restorable_pitr_sidecars() {
  docker ps -aq --no-trunc --filter "label=io.restorable.wal-spool=$(restorable_pitr_spool "$1")" 2>/dev/null || true
}

restorable_pitr_status_file() { printf '%s/wal/%s.status' "$RESTORABLE_STATE_DIR" "$1"; }

# restorable_pitr_write_status CLUSTER EPOCH WAITING_SECONDS
restorable_pitr_write_status() {
  local f
  f=$(restorable_pitr_status_file "$1")
  printf '%s %s\n' "$2" "$3" >"$f.tmp" && mv -f -- "$f.tmp" "$f"
}

# restorable_pitr_rpo DATABASE: for a database on an archived cluster, sets PITR_RPO_AGE (seconds
# of committed data that may not be off-site: what the archiver last measured, plus the time
# since its last round when it has not run for two shipping periods) and PITR_RPO_TEXT; returns
# 1 when the database's cluster is not archived (the dump's age is the RPO then).
restorable_pitr_rpo() {
  local db=$1 i j='' cluster f at waiting now stale
  for i in "${!RESTORABLE_PG_DATABASE[@]}"; do
    if [[ ${RESTORABLE_PG_DATABASE[i]} == "$db" ]]; then j=$i; break; fi
  done
  [[ -n $j ]] || return 1
  cluster=$(restorable_pitr_cluster_of "$j")
  [[ -n $cluster ]] || return 1
  now=$(date -u +%s)
  f=$(restorable_pitr_status_file "$cluster")
  if ! read -r at waiting <"$f" 2>/dev/null || [[ ! $at =~ ^[0-9]+$ || ! $waiting =~ ^[0-9]+$ ]]; then
    PITR_RPO_AGE=999999999
    PITR_RPO_TEXT="the WAL archiver of cluster $cluster has never reported ($f is missing): $db is not archived continuously"
    return 0
  fi
  stale=$((now - at))
  if ((stale > 2 * ${RESTORABLE_PITR_SHIP_SECONDS:-60})); then
    PITR_RPO_AGE=$((waiting + stale))
    PITR_RPO_TEXT="the WAL archiver of cluster $cluster last ran $(restorable_pitr_human "$stale") ago: up to $(restorable_pitr_human "$PITR_RPO_AGE") of $db may not be off-site"
  else
    PITR_RPO_AGE=$waiting
    PITR_RPO_TEXT="committed WAL of $db (cluster $cluster) has waited $(restorable_pitr_human "$waiting") to go off-site"
  fi
}

restorable_pitr_human() {
  local s=$1
  if ((s < 120)); then printf '%ds' "$s"; elif ((s < 7200)); then printf '%dm' "$((s / 60))"; else printf '%dh' "$((s / 3600))"; fi
}
