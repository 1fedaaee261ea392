#!/bin/bash
# restorable backup-volumes: back up every configured Docker named volume to the bucket.
#
# For each volume: a throwaway container from RESTORABLE_VOLUME_IMAGE (needs `tar`) mounts the
# volume read-only, with no network and no log driver (the stream never lands in container logs):
#   docker run --rm -v <volume>:/data:ro <image> tar -C /data -cf - .
#   | zstd | [age -r <recipients>] | tee (sha256, size) | aws s3 cp - s3://<bucket>/<key>
# streamed, with no local copy, into the tier the bucket's restore points of that volume call
# for (restorable_tier: the month's first is monthly, the week's first weekly); the manifest is uploaded
# last, only when every stage exited 0 and the bucket holds exactly the streamed bytes.
# Between the two, a listing of the volume (every entry's path, type, mode, owner, size, mtime,
# sha256 of regular files, symlink targets: lib.sh RESTORABLE_VOLUME_LISTING_SH, computed in the same
# image over the same read-only mount) goes through the same zstd | age | hash | upload pipe; the
# manifest names it (listing: { key, size, sha256, entries }) and the drill compares the restored
# volume with it entry by entry.
# The tarball keeps contents, modes, owners and mtimes; restore with `tar -xpf` into an empty
# volume. Files written while the tar runs may be captured half-written: stop writers first when
# that matters. A failing volume does not stop the others; the run then fails naming it.
#
# Keys (contract): <host>/<tier>/volumes/<volume>/<stamp>.tar.zst[.age] + <stamp>.manifest.json,
# and beside them <stamp>.listing.zst[.age] (the listing the manifest names).
#
# Usage: backup-volumes     (no arguments)
# Exit codes (same for all restorable scripts; see lib.sh):
#   0 success, 1 a stage failed, 2 usage/config/credentials error, 3 another backup-volumes run holds the lock.
# On failure the last stderr line is "<time> restorable backup-volumes: FAILED at stage <stage>: <reason>"
# with stage one of: config, lock, credentials, preflight, tar, listing, compress, encrypt, hash,
# upload, manifest.
# shellcheck disable=SC2154  # RESTORABLE_* settings come from the sourced config and credentials
# shellcheck disable=SC2317  # functions run indirectly, through restorable_try / restorable_stream
set -euo pipefail

RESTORABLE_SELF_DIR=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd -P)
# shellcheck source=lib.sh
. "$RESTORABLE_SELF_DIR/lib.sh"

restorable_no_args "backup-volumes" "${BASH_SOURCE[0]}" "$@"

restorable_init backup-volumes
restorable_lock backup-volumes
restorable_ping start
restorable_load_credentials

# The throwaway container: read-only mount, no network, no logs kept, removed afterwards.
volumes_run() (
  local volume=$1
  shift
  exec docker run --rm --network none --log-driver none -v "$volume:/data:ro" "$RESTORABLE_VOLUME_IMAGE" "$@"
)

# volumes_listing VOLUME COUNT_FILE: the listing on stdout (the producer of its stream); the number
# of entries (lines after the header) into COUNT_FILE.
volumes_listing() {
  local volume=$1 count=$2
  volumes_run "$volume" sh -c "$RESTORABLE_VOLUME_LISTING_SH" sh /data |
    awk -v out="$count" '{ print } END { print NR - 1 > out }'
}

volumes_check() {
  local volume=$1
  # `docker run -v name:...` would silently create a missing volume and back up nothing.
  if ! docker volume inspect --format '{{.Name}}' "$volume" >/dev/null 2>&1; then
    echo "docker volume $volume does not exist" >&2
    return 1
  fi
}

backup_volume() {
  local volume=$1 started=$EPOCHREALTIME
  restorable_try preflight volumes_check "$volume" || return 1
  restorable_item_keys "volumes/$volume" tar.zst || return 1
  local key=$RESTORABLE_ITEM_KEY manifest=$RESTORABLE_ITEM_MANIFEST lkey="$RESTORABLE_ITEM_BASE.listing.zst$RESTORABLE_ITEM_AGE"
  restorable_log "volume $volume: archiving to $(restorable_s3_url "$key") (image $RESTORABLE_VOLUME_IMAGE)"

  # The volume's size bounds the tarball's (plus headers); it sizes multipart parts past 80 GB.
  local kb expected=0
  restorable_try preflight volumes_run "$volume" du -sk /data >"$RESTORABLE_RUN_DIR/du" || return 1
  kb=$(cut -f1 <"$RESTORABLE_RUN_DIR/du" | tr -dc '0-9')
  if [[ -n $kb ]]; then expected=$(((kb + kb / 10 + 1024) * 1024)); fi

  restorable_stream "$key" "$expected" tar "docker run tar" volumes_run "$volume" tar -C /data -cf - . || return 1
  local size=$RESTORABLE_STREAM_SIZE sha=$RESTORABLE_STREAM_SHA256

  # The listing, right after the tar (a writer changing files in between makes the drill fail on
  # them: stop writers first when that matters).
  local entries
  rm -f -- "$RESTORABLE_RUN_DIR/entries"
  restorable_stream "$lkey" 0 listing "the volume listing" volumes_listing "$volume" "$RESTORABLE_RUN_DIR/entries" || return 1
  entries=$(tr -dc '0-9' <"$RESTORABLE_RUN_DIR/entries" 2>/dev/null || true)
  if [[ -z $entries ]]; then
    # shellcheck disable=SC2034 # read by restorable_record_failure
    RESTORABLE_ERROR_STAGE=listing RESTORABLE_ERROR_REASON="the volume listing of $volume did not report its entry count"
    return 1
  fi

  local extra
  extra="\"volume\": $(restorable_json_str "$volume"),"
  extra+=" \"source\": { \"via\": \"docker\", \"volume\": $(restorable_json_str "$volume"), \"image\": $(restorable_json_str "$RESTORABLE_VOLUME_IMAGE") },"
  extra+=" \"listing\": { \"key\": $(restorable_json_str "$lkey"), \"size\": $RESTORABLE_STREAM_SIZE, \"sha256\": \"$RESTORABLE_STREAM_SHA256\", \"entries\": $entries }"
  restorable_try manifest volumes_upload_manifest "$manifest" \
    "$(restorable_manifest volume "$key" "$size" "$sha" tar "$extra" "$started")" || return 1
  restorable_log "volume $volume: done, $size bytes, sha256 $sha, $entries entries listed, manifest $(restorable_s3_url "$manifest")"
  restorable_metrics_item volume "$volume" ok "$size" "$started"
}

volumes_upload_manifest() {
  restorable_s3_put_text "$1" application/json "$2"
}

# ------------------------------------------------------------------------------------------ main

restorable_log "run $RESTORABLE_STAMP into $(restorable_s3_url "$RESTORABLE_PREFIX"): ${#RESTORABLE_VOLUMES[@]} volume(s)"
if ((${#RESTORABLE_VOLUMES[@]} == 0)); then
  restorable_log "no volumes configured; nothing to do"
  restorable_finish
fi
restorable_preflight aws docker zstd sha256sum flock curl
for volume in "${RESTORABLE_VOLUMES[@]}"; do
  if ! backup_volume "$volume"; then
    restorable_record_failure "volume $volume"
    restorable_metrics_item volume "$volume" fail
  fi
done
restorable_finish
