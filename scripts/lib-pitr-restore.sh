# shellcheck shell=bash
# shellcheck disable=SC2034 # results (PITR_*) are read by the scripts that source this file
# shellcheck disable=SC2154 # the restore part reads restore.sh's globals (name, db, force, ...)
# shellcheck disable=SC2094 # the fetcher reads need.tsv's first line while it loops over it
# restorable: point-in-time recovery from the archive (base backups + continuous WAL), shared by
# `restore` (--database NAME --at TIME, --list, --cluster disaster recovery) and `restore-drill`.
# Sourced after lib.sh, lib-restore.sh and lib-pitr.sh. Installed as <scriptsDir>/lib-pitr-restore.sh.
#
# What the archive holds (backup-base.sh, wal-archiver.sh):
#   <host>/<tier>/base/<cluster>/<stamp>.tar.zst[.age] + <stamp>.manifest.json (startLsn, stopLsn,
#       timeline, serverVersion, createdAt, durationSeconds, object sha256)
#   <host>/wal/<cluster>/<segment>.zst[.age]   each with x-amz-meta-sha256 (of the stored bytes)
#
# The window of a cluster: a base backup restores to any second from its end (createdAt +
# durationSeconds, when the copy is consistent) to the last commit in the WAL that follows it
# without a gap. Each unbroken run of WAL segments that holds the stop point of at least one base
# backup is one window: from the end of its oldest base backup to its last archived commit
# (pg_waldump of the run's last segments). A gap ends a window; a later base backup starts the next.
# After a recovery (a new timeline), only segments on the newest timeline's history count: an
# older timeline's segments past its switch point are left in the bucket and ignored.
#
# Recovery (restorable_pitr_recover): the base backup is streamed into a fresh data directory as it
# downloads, its sha256 checked against the manifest when the stream ends and before any server
# starts on it (lib-restore.sh restorable_stream_object; a mismatch fails and the directory goes); a fetcher
# downloads the WAL segments from the base backup's stop point on, LOOKAHEAD segments ahead of the
# recovery at most, PARALLEL at a time, checks each one's sha256 against its x-amz-meta-sha256,
# decrypts and decompresses it into a local directory; PostgreSQL's restore_command serves only
# those verified copies (and waits for the next one). A segment that is missing or corrupt is
# refused, and the recovery fails naming it; a segment the archive does not hold is "not there"
# for PostgreSQL (the end of the archive, or a gap). recovery_target_time = T with
# recovery_target_action = pause: PostgreSQL stops before the first commit after T, or fails with
# "recovery ended before configured recovery target was reached" when the WAL ends first (then the
# first missing segment is named). The time reached is the last replayed commit's timestamp
# (pg_last_xact_replay_timestamp()), reported next to the time asked for, and the first commit
# after T from the server's "recovery stopping before commit" line.

PITR_SEG_BYTES=$((16 * 1024 * 1024))
PITR_LOOKAHEAD=${RESTORABLE_PITR_LOOKAHEAD:-64}
PITR_PARALLEL=${RESTORABLE_PITR_PARALLEL:-4}
PITR_WIN_FILE="" PITR_DIR=""
PITR_REACHED="" PITR_REACHED_EPOCH="" PITR_NEXT_COMMIT="" PITR_RECOVERY_SECONDS="" PITR_SEGMENTS=0
PITR_BASE_STAMP="" PITR_BASE_KEY="" PITR_PGBIN="" PITR_SOCK="" PITR_PORT="" PITR_GAP="" PITR_COVER_REASON=""
PITR_DATA="" PITR_AS=() PITR_NO_BIN="" PITR_WIN="" PITR_TIMELINE=""
# The recovery's runtime: the host's server binaries (PITR_PGBIN, run as the postgres OS user),
# or, with PITR_IMAGE set, a container from that image (restorable_pitr_use_image): the recovery's
# directories are bind-mounted at the same paths (PITR_MOUNTS), its server runs as the image's
# postgres user (PITR_OWNER, uid:gid) in container PITR_CNAME. PITR_OWNER is who owns what the
# server reads and writes (postgres: on the host). PITR_SU: the role the recovery connects as.
# PITR_SU_GIVEN: --user named it; else the base manifest's recorded superuser, else postgres
# and then the PITR_SU_TRY roles.
PITR_IMAGE="" PITR_CNAME="" PITR_MOUNTS=() PITR_OWNER="" PITR_SU=postgres PITR_SU_TRY=() PITR_SU_GIVEN=""
# PITR_MODE: throwaway (a read-only server paused at T, thrown away) or cluster (disaster recovery:
# the data directory PITR_INTO is promoted at T or at the end of the archive and stopped cleanly,
# its own configuration kept, flushed to disk once at the end). PITR_WRITEBACK: 1 when PITR_INTO is
# where the cluster stays (a data directory, not a staging copy for a volume): its files are
# written back to disk while the recovery runs.
PITR_MODE=throwaway PITR_INTO="" PITR_WRITEBACK=""

# restorable_pitr_clusters_of_db DB: the PITR cluster that archives database DB ("" when none).
restorable_pitr_cluster_of_db() {
  local i
  for i in "${!RESTORABLE_PG_DATABASE[@]}"; do
    if [[ ${RESTORABLE_PG_DATABASE[i]} == "$1" ]]; then restorable_pitr_cluster_of "$i"; return 0; fi
  done
}
# restorable_pitr_dbs_of CLUSTER: the configured databases on CLUSTER, one per line.
restorable_pitr_dbs_of() {
  local i
  for i in "${!RESTORABLE_PG_DATABASE[@]}"; do
    if [[ $(restorable_pitr_cluster_of "$i") == "$1" ]]; then printf '%s\n' "${RESTORABLE_PG_DATABASE[i]}"; fi
  done
}

# restorable_pitr_after EPOCH T: 0 when EPOCH (seconds since 1970, with a fraction: a commit's
# time to the microsecond) is later than the whole second T. Not by whole seconds: a commit at
# T.91 is after T, and one at T.3 replayed for a target of T would be a recovery past it.
restorable_pitr_after() {
  local int=${1%%.*} frac=0
  if [[ $1 == *.* ]]; then frac=${1#*.}; fi
  [[ $int =~ ^-?[0-9]+$ && $frac =~ ^[0-9]*$ ]] || return 1
  if ((int != $2)); then ((int > $2)); return; fi
  [[ $frac =~ [1-9] ]]
}

# ---- segment names ------------------------------------------------------------------------------

# restorable_pitr_seq NAME: the segment's position (timeline ignored): log * segments-per-log + seg.
restorable_pitr_seq() {
  local n=$1
  printf '%d' "$((16#${n:8:8} * (0x100000000 / PITR_SEG_BYTES) + 16#${n:16:8}))"
}
# restorable_pitr_seg_name TIMELINE SEQ
restorable_pitr_seg_name() {
  local per=$((0x100000000 / PITR_SEG_BYTES))
  printf '%08X%08X%08X' "$1" "$(($2 / per))" "$(($2 % per))"
}
# restorable_pitr_lsn_seq LSN ("0/5000028"): the position of the segment holding LSN.
restorable_pitr_lsn_seq() {
  local hi=${1%/*} lo=${1#*/}
  # (hi * 2^32 + lo) / size, without the product: a segment size divides 2^32.
  printf '%d' "$((16#$hi * (0x100000000 / PITR_SEG_BYTES) + 16#$lo / PITR_SEG_BYTES))"
}
# The same three in awk, for whole files of names (an archive holds thousands of segments: a
# process per name would take seconds per thousand). Called with -v per=<segments per 4 GiB log>
# -v seg=PITR_SEG_BYTES (restorable_pitr_awk).
# shellcheck disable=SC2016 # awk source
PITR_AWK_SEG='
function pitr_hex(h,  i, v) { v = 0; for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789ABCDEF", toupper(substr(h, i, 1))) - 1; return v }
function pitr_seq(n) { return pitr_hex(substr(n, 9, 8)) * per + pitr_hex(substr(n, 17, 8)) }
function pitr_lsn_seq(lsn,  p) { p = index(lsn, "/"); return pitr_hex(substr(lsn, 1, p - 1)) * per + int(pitr_hex(substr(lsn, p + 1)) / seg) }
function pitr_is_hex(h) { return h != "" && h !~ /[^0-9A-F]/ }
'
# restorable_pitr_awk PROGRAM ARGS...: awk with PITR_AWK_SEG's functions, per and seg set.
restorable_pitr_awk() {
  local prog=$1
  shift
  awk -v per="$((0x100000000 / PITR_SEG_BYTES))" -v seg="$PITR_SEG_BYTES" "$PITR_AWK_SEG$prog" "$@"
}

# restorable_pitr_pgbin MAJOR: the bin dir of PostgreSQL MAJOR's server binaries (physical
# recovery needs the same major version as the backed-up cluster) in PITR_PGBIN_FOUND; returns 1
# when this host has none. Each answer is kept for the run (restore asks up to three times, and
# each look runs postgres -V): call it in the script's shell, not in $(...).
declare -A PITR_PGBIN_OF=()
PITR_PGBIN_FOUND=""
restorable_pitr_pgbin() {
  local major=$1 d
  if [[ -z ${PITR_PGBIN_OF[$major]+set} ]]; then
    PITR_PGBIN_OF[$major]=""
    # (pg_config only when neither of the others has them: it is a process more per call)
    for d in "${RESTORABLE_DRILL_PGBIN:-}" "/usr/lib/postgresql/$major/bin" pg_config; do
      if [[ $d == pg_config ]]; then d=$(pg_config --bindir 2>/dev/null || true); fi
      [[ -n $d && -x $d/postgres && -x $d/pg_ctl ]] || continue
      if [[ $("$d/postgres" -V 2>/dev/null | awk '{ split($NF, v, "."); print v[1] }') == "$major" ]]; then PITR_PGBIN_OF[$major]=${d%/}; break; fi
    done
  fi
  PITR_PGBIN_FOUND=${PITR_PGBIN_OF[$major]}
  [[ -n $PITR_PGBIN_FOUND ]]
}

# restorable_pitr_use_image IMAGE MAJOR: recover with IMAGE's server binaries. Checks that docker
# answers and that the image holds PostgreSQL MAJOR; sets PITR_IMAGE and PITR_OWNER (the image's
# postgres uid:gid, what the official image's data directory is owned by). Dies (current stage).
restorable_pitr_use_image() {
  restorable_pitr_probe_image "$@" || restorable_die "$PITR_IMAGE_WHY"
}

# restorable_pitr_probe_image IMAGE MAJOR: as restorable_pitr_use_image, but returns 1 with the
# reason in PITR_IMAGE_WHY instead of dying.
PITR_IMAGE_WHY=""
restorable_pitr_probe_image() {
  local image=$1 major=$2 err="$RESTORABLE_TMP/work/image.err" out v owner
  if ! docker info >/dev/null 2>"$err"; then
    PITR_IMAGE_WHY="recovering with image $image needs docker, which is not reachable: $(restorable_last_line "$err")"
    return 1
  fi
  # shellcheck disable=SC2016 # expanded by the image's sh
  if ! out=$(docker run --rm --network none --log-driver none --entrypoint sh "$image" -c "$RESTORABLE_IMAGE_PGBIN_SH"'
[ -x "$b/postgres" ] || { echo "no PostgreSQL server binaries in this image" >&2; exit 1; }
printf "%s %s:%s\n" "$("$b/postgres" -V | awk "{ print \$NF }")" "$(id -u postgres)" "$(id -g postgres)"' 2>"$err"); then
    PITR_IMAGE_WHY="cannot use image $image for the recovery: $(restorable_last_line "$err")"
    return 1
  fi
  v=${out%% *}
  if [[ ${v%%.*} != "$major" ]]; then
    PITR_IMAGE_WHY="image $image holds PostgreSQL ${v:-?}; the archived cluster is PostgreSQL $major: give --image with a PostgreSQL $major image (e.g. postgres:$major; drill.image in the config is the default)"
    return 1
  fi
  owner=${out#* }
  if [[ ! $owner =~ ^[0-9]+:[0-9]+$ || $owner == 0:* ]]; then
    PITR_IMAGE_WHY="image $image has no postgres user to run the recovery as (id postgres: ${owner:-nothing})"
    return 1
  fi
  PITR_OWNER=$owner PITR_IMAGE=$image PITR_PGBIN=""
}

# restorable_pitr_tool TOOL ARGS...: a PostgreSQL program of the recovery's runtime: the host's (as
# the postgres OS user), or the image's: inside the running recovery container (docker exec), else
# in a one-shot container that sees the recovery's directories at the same paths. PITR_TOOL_AS=0
# runs the one-shot as root (to read files only root may read).
restorable_pitr_tool() {
  local tool=$1
  shift
  if [[ -z $PITR_IMAGE ]]; then "${PITR_AS[@]}" "$PITR_PGBIN/$tool" "$@"; return; fi
  # shellcheck disable=SC2016 # expanded by the image's sh
  if [[ -n $PITR_CNAME ]] && docker inspect --format '{{.State.Running}}' "$PITR_CNAME" 2>/dev/null | grep -qx true; then
    docker exec "$PITR_CNAME" sh -c "$RESTORABLE_IMAGE_PGBIN_SH"'; exec "$b/$0" "$@"' "$tool" "$@"
    return
  fi
  docker run --rm --network none --log-driver none --user "${PITR_TOOL_AS:-$PITR_OWNER}" "${PITR_MOUNTS[@]}" \
    --entrypoint sh "$PITR_IMAGE" -c "$RESTORABLE_IMAGE_PGBIN_SH"'; exec "$b/$0" "$@"' "$tool" "$@"
}

# ---- inventory and windows ----------------------------------------------------------------------

# restorable_pitr_manifests CLUSTER LISTING DIR: downloads the base backups' manifests of CLUSTER
# (manifest-backed only: the manifest is uploaded last) and writes
#   DIR/manifests.tsv  end <TAB> stamp <TAB> manifestKey <TAB> stopLsn <TAB> serverVersion <TAB> createdAt <TAB> walSegmentBytes ("-": not recorded)
# Sets PITR_SEG_BYTES, the cluster's WAL segment size: what its base manifests record
# (walSegmentBytes; manifests from before it was recorded say nothing), 16 MiB when none records
# it. Dies (at the current stage) when a manifest cannot be read, records a size PostgreSQL
# cannot have, or when the manifests disagree (pg_resetwal --wal-segsize after a base backup:
# segment names of two sizes cannot be put in one order).
restorable_pitr_manifests() {
  local cluster=$1 listing=$2 dir=$3 k mf
  mkdir -p -- "$dir/manifests"
  : >"$dir/manifests.tsv"
  : >"$dir/manifests.fields"
  # Downloaded 8 at a time (a bucket with the whole retention holds 23 or more), read in order.
  jq -r --arg p "$RESTORABLE_PREFIX" --arg c "$cluster" '
    .key as $k | select($k | startswith($p)) | ($k[($p | length):] | split("/")) as $r
    | select(($r | length) == 4 and (["daily","weekly","monthly"] | index($r[0])) != null and $r[1] == "base" and $r[2] == $c
             and ($r[3] | test("^[0-9]{8}T[0-9]{6}Z\\.manifest\\.json$"))) | $k' "$listing" >"$dir/manifest-keys"
  local -a gets=()
  while IFS= read -r k; do
    mf="$dir/manifests/${k//\//_}"
    if ((${#gets[@]} >= 8)); then wait "${gets[0]}" || true; gets=("${gets[@]:1}"); fi
    { restorable_s3_request GET "$k" "" "$RESTORABLE_EMPTY_SHA256" "$mf" -D "$mf.hdr" 2>"$mf.err" || echo failed >"$mf.failed"; } </dev/null &
    gets+=("$!")
  done <"$dir/manifest-keys"
  for k in "${gets[@]}"; do wait "$k" || true; done
  local -a mfs=()
  while IFS= read -r k; do
    mf="$dir/manifests/${k//\//_}"
    [[ ! -e $mf.failed ]] || restorable_die "cannot download base backup manifest s3://$RESTORABLE_BUCKET/$k: $(restorable_last_line "$mf.err")"
    mfs+=("$mf")
  done <"$dir/manifest-keys"
  # Every manifest read by one jq (a process per manifest and field took a second per 20 base
  # backups), with the Last-Modified of each (its .hdr) beside it. One line per manifest, fields
  # separated by \x1f (a tab is IFS white space: empty fields would collapse): file, createdAt,
  # createdAt in epoch seconds ("" when jq cannot read it), whole seconds of durationSeconds,
  # stopLsn, serverVersion, walSegmentBytes ("-": not recorded), Last-Modified in epoch seconds
  # (0: none).
  if ((${#mfs[@]})); then
    awk 'FNR == 1 { if (f != "") print f "\t" lm; f = FILENAME; lm = "" } { sub(/\r$/, "") }
      tolower(substr($0, 1, 14)) == "last-modified:" { lm = substr($0, 15); sub(/^ */, "", lm) }
      END { if (f != "") print f "\t" lm }' "${mfs[@]/%/.hdr}" >"$dir/lastmod.tsv"
    # shellcheck disable=SC2016 # jq program
    if ! jq -r -n --rawfile lm "$dir/lastmod.tsv" '
      ($lm | split("\n") | map(select(. != "") | split("\t") | {key: .[0], value: (.[1] // "")}) | from_entries) as $m
      | inputs | input_filename as $f
      | if .kind == "base" and (.stopLsn | type) == "string" then . else error("not a base backup manifest") end
      | [$f, (.createdAt // "" | tostring), (.createdAt | try fromdateiso8601 catch "" | tostring),
         (.durationSeconds // 0 | if type == "number" then floor else 0 end | tostring), .stopLsn,
         (.serverVersion // "" | tostring), (.walSegmentBytes // "-" | tostring),
         ($m[$f + ".hdr"] // "" | try (strptime("%a, %d %b %Y %H:%M:%S GMT") | mktime) catch 0 | tostring)]
      | join("\u001f")' "${mfs[@]}" >"$dir/manifests.fields" 2>"$dir/manifests.err"; then
      # Which one: the first in order that is not a base backup manifest (or not JSON).
      while IFS= read -r k; do
        jq -e '.kind == "base" and (.stopLsn | type) == "string"' "$dir/manifests/${k//\//_}" >/dev/null 2>&1 || restorable_die "base backup manifest $k is not a base backup manifest"
      done <"$dir/manifest-keys"
      restorable_die "cannot read the base backup manifests of cluster $cluster: $(restorable_last_line "$dir/manifests.err")"
    fi
  fi
  local f created epoch dur stop ver seg lm i=0 end stamp prev=""
  while IFS= read -r k; do
    mf=${mfs[i]}
    IFS=$'\x1f' read -r f created epoch dur stop ver seg lm <&3 || f=""
    i=$((i + 1))
    if [[ $f != "$mf" ]]; then
      if ((i > 1)) && [[ $f == "${mfs[i - 2]}" ]]; then restorable_die "base backup manifest $prev is not a base backup manifest: it holds more than one JSON document"; fi
      restorable_die "base backup manifest $k is not a base backup manifest"
    fi
    prev=$k
    [[ $stop =~ ^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$ ]] || restorable_die "base backup manifest $k has no readable stopLsn: ${stop:0:40}"
    if [[ $seg != - ]] && ! restorable_pitr_segsize_ok "$seg"; then
      restorable_die "base backup manifest $k records walSegmentBytes ${seg:0:40}, not a WAL segment size (a power of two from 1 MiB to 1 GiB)"
    fi
    if [[ ! $epoch =~ ^[0-9]+$ ]]; then epoch=$(date -u -d "$created" +%s 2>/dev/null) || restorable_die "base backup manifest $k has no readable createdAt"; fi
    # Consistent once pg_basebackup has finished: createdAt + the run's duration (rounded up),
    # and not before the manifest (uploaded last) reached the store.
    end=$((epoch + dur + 1))
    if [[ $lm =~ ^[0-9]+$ ]] && ((lm > end)); then end=$lm; fi
    rm -f -- "$mf.hdr" "$mf.err"
    stamp=${k##*/}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$end" "${stamp%.manifest.json}" "$k" "$stop" "$ver" "$created" "$seg" >>"$dir/manifests.tsv"
  done <"$dir/manifest-keys" 3<"$dir/manifests.fields"
  sort -t $'\t' -k1,1n -o "$dir/manifests.tsv" "$dir/manifests.tsv"
  local sizes
  sizes=$(awk -F '\t' '$7 != "-" { n[$7] = n[$7] (n[$7] == "" ? "" : ", ") $2 } END { for (s in n) print s " bytes (base backup(s) " n[s] ")" }' "$dir/manifests.tsv" | sort -n)
  if (($(grep -c . <<<"$sizes") > 1)); then
    restorable_die "the base backups of cluster $cluster disagree about its WAL segment size: $(paste -sd';' - <<<"$sizes" | sed 's/;/; /g'); its archive holds segment names of more than one size (pg_resetwal --wal-segsize?), which this version cannot put in one order: restore from a copy of the archive that holds only one size's base backups and WAL"
  fi
  PITR_SEG_BYTES=${sizes%% *}
  PITR_SEG_BYTES=${PITR_SEG_BYTES:-$((16 * 1024 * 1024))}
}

# restorable_pitr_segsize_ok BYTES: 0 when BYTES is a WAL segment size PostgreSQL can have (initdb
# --wal-segsize: a power of two from 1 MiB to 1 GiB).
restorable_pitr_segsize_ok() {
  [[ $1 =~ ^[1-9][0-9]{0,9}$ ]] && (($1 >= 1048576 && $1 <= 1073741824 && ($1 & ($1 - 1)) == 0))
}

# restorable_pitr_mib BYTES: "16 MiB"
restorable_pitr_mib() { printf '%d MiB' "$(($1 / 1048576))"; }

# restorable_pitr_inventory CLUSTER LISTING DIR: what the archive of CLUSTER holds, from the
# bucket listing (restorable_list_bucket JSON lines). Downloads the base backups' manifests. Writes
#   DIR/wal.tsv      seq <TAB> name <TAB> key     (segments, by position; all timelines)
#   DIR/history.tsv  name <TAB> key              (timeline history files)
#   DIR/bases.tsv    end <TAB> stamp <TAB> manifestKey <TAB> stopSeq <TAB> serverVersion <TAB> createdAt
#   DIR/runs.tsv     first <TAB> last            (unbroken runs of segment positions)
#   DIR/gaps.tsv     name                        (the first missing segment after each run but the last)
# and DIR/manifests.tsv; sets PITR_SEG_BYTES (restorable_pitr_manifests), which the positions use.
# Dies (at the current stage) when a manifest cannot be read or the manifests disagree about the
# segment size.
restorable_pitr_inventory() {
  local cluster=$1 listing=$2 dir=$3 wp
  wp="${RESTORABLE_PREFIX}wal/$cluster/"
  mkdir -p -- "$dir"
  # The base backups' manifests first: they say the cluster's WAL segment size, which every
  # segment position below depends on.
  restorable_pitr_manifests "$cluster" "$listing" "$dir"
  # Segments and history files, the name being the key without the prefix and .zst[.age]: one
  # pass over the listing.
  # (paths through the environment: awk -v would read backslashes in them as escapes)
  jq -r --arg p "$wp" 'select(.key | startswith($p)) | .key' "$listing" |
    PITR_WP=$wp PITR_WAL_OUT="$dir/wal.tsv.tmp" PITR_HIST_OUT="$dir/history.tsv" restorable_pitr_awk '
      BEGIN { wal = ENVIRON["PITR_WAL_OUT"]; hist = ENVIRON["PITR_HIST_OUT"]; printf "" > wal; printf "" > hist }
      { n = substr($0, length(ENVIRON["PITR_WP"]) + 1); sub(/\.age$/, "", n); sub(/\.zst$/, "", n) }
      length(n) == 24 && pitr_is_hex(n) { print pitr_seq(n) "\t" n "\t" $0 > wal; next }
      length(n) == 16 && substr(n, 9) == ".history" && pitr_is_hex(substr(n, 1, 8)) { print n "\t" $0 > hist }' ||
    restorable_die "cannot read the bucket listing for the WAL archive of cluster $cluster"
  # After a recovery the cluster runs on a newer timeline: only the segments on the newest
  # timeline's history count (an older timeline's segments after its switch point are the future
  # that recovery undid; they stay in the bucket, untouched, but no window runs through them).
  local hmax hkey tli lsn
  hmax=$(cut -f1 "$dir/history.tsv" | sort | tail -n 1)
  if [[ -n $hmax ]]; then
    hkey=$(awk -F '\t' -v n="$hmax" '$1 == n { print $2 }' "$dir/history.tsv")
    restorable_pitr_get_segment "$hkey" "$dir/$hmax" "${identity:-}" 2>"$dir/history.err" ||
      restorable_die "cannot read the timeline history $hmax of cluster $cluster: $(restorable_last_line "$dir/history.err")"
    printf '%d\t-1\n' "$((16#${hmax:0:8}))" >"$dir/timelines.tsv"
    while read -r tli lsn _; do
      [[ $tli =~ ^[0-9]+$ && $lsn =~ ^[0-9A-Fa-f]+/[0-9A-Fa-f]+$ ]] || continue
      printf '%d\t%d\n' "$tli" "$(restorable_pitr_lsn_seq "$lsn")" >>"$dir/timelines.tsv"
    done <"$dir/$hmax"
    restorable_pitr_awk 'BEGIN { FS = "\t" } FILENAME == ARGV[1] { max[$1] = $2; next }
      { t = pitr_hex(substr($2, 1, 8)) } (t in max) && (max[t] < 0 || $1 <= max[t])' "$dir/timelines.tsv" "$dir/wal.tsv.tmp" >"$dir/wal.tsv.cur"
    mv -f -- "$dir/wal.tsv.cur" "$dir/wal.tsv.tmp"
  fi
  sort -t $'\t' -k1,1n -k2,2 "$dir/wal.tsv.tmp" >"$dir/wal.tsv"
  rm -f -- "$dir/wal.tsv.tmp"
  # Unbroken runs of positions, and the first missing segment after each run but the last.
  # (runs.tmp: first <TAB> last <TAB> the timeline of the last run's newest segment at its last position)
  awk -F '\t' 'NR == 1 { f = $1; l = $1; tl = substr($2, 1, 8); next } $1 == l { tl = substr($2, 1, 8); next }
    $1 == l + 1 { l = $1; tl = substr($2, 1, 8); next } { print f "\t" l "\t" tl; f = $1; l = $1; tl = substr($2, 1, 8) }
    END { if (NR) print f "\t" l "\t" tl }' "$dir/wal.tsv" >"$dir/runs.tmp"
  cut -f1,2 "$dir/runs.tmp" >"$dir/runs.tsv"
  : >"$dir/gaps.tsv"
  local first last tl final
  final=$(tail -n 1 "$dir/runs.tsv" | cut -f2)
  while IFS=$'\t' read -r first last tl; do
    if [[ $last != "$final" ]]; then
      restorable_pitr_seg_name "$((16#$tl))" "$((last + 1))" >>"$dir/gaps.tsv"
      printf '\n' >>"$dir/gaps.tsv"
    fi
  done <"$dir/runs.tmp"
  rm -f -- "$dir/runs.tmp"
  # The base backups, with their stop positions.
  restorable_pitr_awk 'BEGIN { FS = OFS = "\t" } { print $1, $2, $3, pitr_lsn_seq($4), $5, $6 }' "$dir/manifests.tsv" >"$dir/bases.tsv"
}

# restorable_pitr_last_commit DIR FIRST LAST: the timestamp of the last commit in the segments
# FIRST..LAST (positions, in DIR/wal.tsv), read with pg_waldump from the newest segment backwards
# (up to 256 MiB of WAL: 16 segments of 16 MiB, 256 of 1 MiB; at least 2). Prints "epoch<TAB>text"
# or nothing. Needs PITR_PGBIN or PITR_IMAGE.
restorable_pitr_last_commit() {
  local dir=$1 first=$2 last=$3 s key name f ts n=0 most=$((256 * 1024 * 1024 / PITR_SEG_BYTES))
  if ((most < 2)); then most=2; fi
  mkdir -p -- "$dir/scan"
  # As root, on the host or in a one-shot container of the image that sees only the scan directory.
  local -a PITR_AS=() PITR_MOUNTS=(-v "$dir/scan:$dir/scan:ro")
  local PITR_TOOL_AS=0:0 PITR_CNAME=""
  for ((s = last; s >= first && n < most; s--, n++)); do
    name="" key=""
    IFS=$'\t' read -r name key < <(awk -F '\t' -v s="$s" '$1 == s { print $2 "\t" $3 }' "$dir/wal.tsv" | tail -n 1) || true
    [[ -n $key ]] || continue
    f="$dir/scan/$name"
    restorable_pitr_get_segment "$key" "$f" "${identity:-}" 2>"$dir/scan.err" || return 1
    ts=$(restorable_pitr_tool pg_waldump "$f" 2>/dev/null | sed -n 's/.*desc: COMMIT \([0-9-]* [0-9:.]*\( [A-Z]*\)\{0,1\}\).*/\1/p' | tail -n 1 || true)
    rm -f -- "$f"
    if [[ -n $ts ]]; then
      printf '%s\t%s\n' "$(date -u -d "$ts" +%s)" "$ts"
      return 0
    fi
  done
}

# restorable_pitr_windows CLUSTER DIR: after the inventory, DIR/windows.tsv, one line per window:
#   start <TAB> end <TAB> endText <TAB> firstSeq <TAB> lastSeq <TAB> bases <TAB> gapAfter ("-": none)
# (start: the end of the run's oldest base backup; end: its last archived commit, in epoch seconds).
restorable_pitr_windows() {
  local cluster=$1 dir=$2 first last start nb lc end endtext gap i=0 ver
  : >"$dir/windows.tsv"
  ver=$(tail -n 1 "$dir/bases.tsv" | cut -f5)
  PITR_NO_BIN=""
  if [[ -s $dir/bases.tsv ]] && [[ -z $PITR_PGBIN && -z $PITR_IMAGE ]]; then
    PITR_PGBIN=""
    if restorable_pitr_pgbin "${ver%%.*}"; then PITR_PGBIN=$PITR_PGBIN_FOUND; fi
    # None on the host (a Compose host): the drill image's, when docker answers and it has them.
    if [[ -z $PITR_PGBIN && -n ${RESTORABLE_DRILL_IMAGE:-} && $(id -u) -eq 0 ]] && command -v docker >/dev/null 2>&1 &&
      restorable_pitr_probe_image "$RESTORABLE_DRILL_IMAGE" "${ver%%.*}"; then
      restorable_log "this host has no PostgreSQL ${ver%%.*} server binaries: reading and recovering the archive of cluster $cluster in containers from $PITR_IMAGE (the drill image)"
    fi
    # Without either the windows end at their base backups (nothing after can be vouched for).
    [[ -n $PITR_PGBIN || -n $PITR_IMAGE ]] || PITR_NO_BIN="reading the WAL archive of cluster $cluster (PostgreSQL ${ver:-?}) needs the PostgreSQL ${ver%%.*} server binaries (pg_waldump, postgres) on this host (apt-get install postgresql-${ver%%.*}) or a drill image with them${PITR_IMAGE_WHY:+ ($PITR_IMAGE_WHY)}"
  fi
  while IFS=$'\t' read -r first last; do
    i=$((i + 1))
    gap=$(sed -n "${i}p" "$dir/gaps.tsv")
    read -r start nb < <(awk -F '\t' -v f="$first" -v l="$last" '$4 >= f - 1 && $4 <= l { n++; if (s == "" || $1 < s) s = $1 } END { print (s == "" ? "-" : s) "\t" n + 0 }' "$dir/bases.tsv")
    [[ $start != - ]] || continue
    lc=""
    if [[ -z $PITR_NO_BIN ]] && ! lc=$(restorable_pitr_last_commit "$dir" "$first" "$last"); then
      # An encrypted archive without the identity: the window ends at its base backup here.
      grep -q 'encrypted with age' "$dir/scan.err" 2>/dev/null || restorable_die "cannot read the WAL archive of cluster $cluster: $(cat "$dir/scan.err" 2>/dev/null || true)"
      PITR_NO_BIN="the WAL archive of cluster $cluster is encrypted with age: give the identity file (--identity FILE or RESTORABLE_AGE_IDENTITY) to read where it ends"
      lc=""
    fi
    if [[ -n $lc ]]; then IFS=$'\t' read -r end endtext <<<"$lc"; else end=$start endtext="(no commit archived after the base backup)"; fi
    if ((end < start)); then end=$start; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$start" "$end" "$endtext" "$first" "$last" "$nb" "${gap:--}" >>"$dir/windows.tsv"
  done <"$dir/runs.tsv"
}

# restorable_pitr_windows_text DIR: "2026-12-01T02:00:05Z .. 2026-12-02T00:50:01Z (2 base backups)[; ...]"
restorable_pitr_windows_text() {
  local s e et f l nb gap out=""
  while IFS=$'\t' read -r s e et f l nb gap; do
    out+="${out:+; }$(restorable_iso "$s") .. $(restorable_iso "$e")"
    [[ $gap == - ]] || out+=" (then a gap: $gap is missing)"
  done <"$1/windows.tsv"
  printf '%s' "${out:-none}"
}

# restorable_pitr_cover DIR T: the window and base backup for time T (epoch seconds; "latest": the
# end of the newest window). Sets PITR_BASE_KEY, PITR_BASE_STAMP, PITR_WIN (the window's line)
# and returns 0; returns 1 with PITR_COVER_REASON when no window covers T.
restorable_pitr_cover() {
  local dir=$1 t=$2 s e et f l nb gap line=""
  PITR_COVER_REASON="" PITR_BASE_KEY="" PITR_BASE_STAMP="" PITR_WIN="" PITR_GAP=""
  if [[ ! -s $dir/windows.tsv ]]; then
    if [[ -n $PITR_NO_BIN ]]; then PITR_COVER_REASON=$PITR_NO_BIN
    elif [[ ! -s $dir/bases.tsv ]]; then PITR_COVER_REASON="the archive holds no base backup"
    elif [[ ! -s $dir/wal.tsv ]]; then PITR_COVER_REASON="the archive holds no WAL"
    else PITR_COVER_REASON="no base backup is followed by archived WAL"; fi
    return 1
  fi
  if [[ $t == latest ]]; then line=$(tail -n 1 "$dir/windows.tsv"); t=$(cut -f2 <<<"$line"); else
    line=$(awk -F '\t' -v t="$t" '$1 <= t && t <= $2' "$dir/windows.tsv" | tail -n 1)
  fi
  if [[ -z $line ]]; then
    PITR_COVER_REASON="the archive covers $(restorable_pitr_windows_text "$dir")"
    # A gap right after the window that ends before T: name the missing segment.
    gap=$(awk -F '\t' -v t="$t" '$2 < t && $7 != "-" { g = $7 } END { print g }' "$dir/windows.tsv")
    if [[ -n $gap ]]; then PITR_GAP=$gap PITR_COVER_REASON="the archive has a gap: WAL segment $gap is missing; $PITR_COVER_REASON"; fi
    return 1
  fi
  IFS=$'\t' read -r s e et f l nb gap <<<"$line"
  PITR_WIN=$line
  # The newest base backup of this run that is consistent at T.
  read -r PITR_BASE_STAMP PITR_BASE_KEY < <(awk -F '\t' -v f="$f" -v l="$l" -v t="$t" '$4 >= f - 1 && $4 <= l && $1 <= t { x = $2 "\t" $3 } END { print x }' "$dir/bases.tsv")
  [[ -n $PITR_BASE_KEY ]] || { PITR_COVER_REASON="no base backup is consistent at $(restorable_iso "$t")"; return 1; }
}

# restorable_pitr_nearest_dump POINTS DB T: the dump restore point at or before T that `restore
# --at` would pick ("stamp (tier)"), else the oldest after T, else nothing.
restorable_pitr_nearest_dump() {
  local p
  p=$(restorable_pick "$1" postgres "$2" "$3")
  if [[ -n $p ]]; then awk -F '\t' '{ print $4 " (" $3 ")" }' <<<"$p"; return 0; fi
  awk -F '\t' -v n="$2" '$1 == "postgres" && $2 == n { print $4 " (" $3 ", after the time asked for)"; exit }' "$1"
}

# ---- segments -----------------------------------------------------------------------------------

# restorable_pitr_get_segment KEY OUT IDENTITY: download one WAL object, check its sha256 against
# the x-amz-meta-sha256 it was stored with, decrypt (.age) and decompress it into OUT. Non-zero
# with one line on stderr naming what is wrong.
restorable_pitr_get_segment() {
  local key=$1 out=$2 identity=$3 obj="$2.obj" hdr="$2.hdr" want got rc=0
  if ! restorable_s3_request GET "$key" "" "$RESTORABLE_EMPTY_SHA256" "$obj" -D "$hdr" 2>"$out.err"; then
    local e
    e=$(tail -n 1 "$out.err")
    rm -f -- "$obj" "$hdr" "$out.err"
    if [[ $e == *" 404"* || $e == *NoSuchKey* ]]; then echo "missing from the bucket ($key: $e)" >&2; else echo "cannot download $key: $e" >&2; fi
    return 1
  fi
  # (read and sha256sum's output taken apart in the shell: this runs for every segment replayed)
  local line
  want=""
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [[ ${line,,} =~ ^x-amz-meta-sha256:\ *([0-9a-f]{64})$ ]]; then want=${BASH_REMATCH[1]}; fi
  done <"$hdr"
  rm -f -- "$hdr" "$out.err"
  got=""
  read -r got _ < <(sha256sum -- "$obj")
  if [[ -z $want ]]; then rm -f -- "$obj"; echo "$key carries no x-amz-meta-sha256: it cannot be verified, so it is not used" >&2; return 1; fi
  if [[ $want != "$got" ]]; then
    rm -f -- "$obj"
    echo "corrupt: sha256 of $key is $got, it was stored with $want" >&2
    return 1
  fi
  if [[ $key == *.age ]]; then
    [[ -n $identity && -r $identity ]] || { rm -f -- "$obj"; echo "$key is encrypted with age: give the identity file (--identity FILE or RESTORABLE_AGE_IDENTITY)" >&2; return 1; }
    age -d -i "$identity" "$obj" 2>"$out.err" | zstd -q -d -c >"$out.tmp" 2>>"$out.err" || rc=$?
  else
    zstd -q -d -c -- "$obj" >"$out.tmp" 2>"$out.err" || rc=$?
  fi
  rm -f -- "$obj"
  if ((rc != 0)); then echo "cannot decrypt/decompress $key: $(tail -n 1 "$out.err")" >&2; rm -f -- "$out.tmp" "$out.err"; return 1; fi
  rm -f -- "$out.err"
  mv -f -- "$out.tmp" "$out"
}

# The fetcher: DIR/need.tsv (seq <TAB> name <TAB> key) in order, PITR_PARALLEL at a time and at
# most PITR_LOOKAHEAD segments past the one PostgreSQL last asked for (DIR/asked); each verified
# copy lands in DIR/ok/NAME (mode 0644 in the server's own 0700 directory: no chown per segment),
# each failure in DIR/bad/NAME (its reason); DIR/done at the end. A process or two per segment,
# not a dozen: a day of WAL can be thousands of segments.
restorable_pitr_fetcher() {
  local dir=$1 identity=$2 seq name key a asked_seq first="" running=0 per
  trap - EXIT INT TERM HUP ERR
  set +e
  umask 022
  per=$((0x100000000 / PITR_SEG_BYTES))
  mkdir -p -- "$dir/err"
  IFS=$'\t' read -r first _ <"$dir/need.tsv"
  fetch_one() {
    if ! restorable_pitr_get_segment "$3" "$dir/ok/$2" "$identity" 2>"$dir/err/$2"; then
      [[ -s $dir/err/$2 ]] || echo failed >"$dir/err/$2"
      mv -f -- "$dir/err/$2" "$dir/bad/$2"
    fi
  }
  while IFS=$'\t' read -r seq name key; do
    while :; do
      asked_seq=$first a=""
      { read -r a <"$dir/asked"; } 2>/dev/null
      if [[ $a =~ ^[0-9A-F]{24}$ ]]; then asked_seq=$((16#${a:8:8} * per + 16#${a:16:8})); fi
      if ((seq - asked_seq <= PITR_LOOKAHEAD)); then break; fi
      sleep 0.2
    done
    if ((running >= PITR_PARALLEL)); then wait -n; running=$((running - 1)); fi
    fetch_one "$seq" "$name" "$key" &
    running=$((running + 1))
  done <"$dir/need.tsv"
  wait
  : >"$dir/done"
}

# ---- recovery -----------------------------------------------------------------------------------

# restorable_pitr_hot_standby_opts DATA: the settings a hot standby needs at least as high as the
# primary had them (pg_controldata of the base backup), with headroom: the WAL after the base
# backup may raise them (a parameter-change record), and a standby below them pauses replay.
restorable_pitr_hot_standby_opts() {
  restorable_pitr_tool pg_controldata "$1" 2>/dev/null | awk -F ': *' '
    function at_least(name, v, floor) { print name " = " (v + 0 > floor ? v + 0 : floor) }
    /^max_connections setting/ { at_least("max_connections", $2, 500) }
    /^max_worker_processes setting/ { at_least("max_worker_processes", $2, 64) }
    /^max_wal_senders setting/ { at_least("max_wal_senders", $2, 32) }
    /^max_prepared_xacts setting/ { at_least("max_prepared_transactions", $2, 64) }
    /^max_locks_per_xact setting/ { at_least("max_locks_per_transaction", $2, 256) }'
}

# restorable_pitr_sql SQL: run SQL in the recovered server (database postgres; DB with PITR_DB).
restorable_pitr_sql() {
  local -a opts=(-X -A -t -q -v ON_ERROR_STOP=1 -h "$PITR_SOCK" -p "$PITR_PORT" -U "$PITR_SU" -d "${PITR_DB:-postgres}" -c "$1")
  if [[ -n $PITR_IMAGE ]]; then restorable_pitr_tool psql "${opts[@]}"; else "$PITR_PGBIN/psql" "${opts[@]}"; fi
}

# restorable_pitr_server_start BASE: start the recovery server as a background child (its pid in
# PITR_SERVER_PID; its output appended to BASE/server.log): the host's postgres as the postgres OS
# user, or the image's in an attached `docker run --rm` (the client lives as long as the server).
PITR_SERVER_PID="" PITR_STARTS=0
restorable_pitr_server_start() {
  local base=$1
  if [[ -z $PITR_IMAGE ]]; then
    (cd "$base" && restorable_without_lock "${PITR_AS[@]}" "$PITR_PGBIN/postgres" -D "$PITR_DATA" -c "config_file=$base/postgresql.conf") \
      </dev/null >>"$base/server.log" 2>&1 &
  else
    PITR_STARTS=$((PITR_STARTS + 1))
    PITR_CNAME="restorable-recovery-$$-$PITR_STARTS"
    # shellcheck disable=SC2016 # expanded by the image's sh
    # shellcheck disable=SC2153 # RESTORABLE_HOST is the config's (lib.sh)
    restorable_without_lock docker run --rm --name "$PITR_CNAME" --label "restorable.recovery=$RESTORABLE_HOST" --network none \
      --user "$PITR_OWNER" "${PITR_MOUNTS[@]}" --entrypoint sh "$PITR_IMAGE" -c "$RESTORABLE_IMAGE_PGBIN_SH"'; exec "$b/postgres" "$@"' \
      postgres -D "$PITR_DATA" -c "config_file=$base/postgresql.conf" </dev/null >>"$base/server.log" 2>&1 &
  fi
  PITR_SERVER_PID=$!
}

# restorable_pitr_recover CLUSTER INV_DIR T IDENTITY BASE_DIR: recover CLUSTER to T (epoch seconds,
# or "latest": the end of the archive) from the base backup restorable_pitr_cover chose, into
# BASE_DIR/data (a fresh directory; BASE_DIR is made for it), as a throwaway server on a unix socket
# in BASE_DIR/sock, paused at T (hot standby, read-only) or, for "latest", promoted at the end of
# the archive. Dies naming the stage (download, verify, decrypt, decompress, wal, recover) and the
# first missing or corrupt segment. Sets PITR_REACHED (the last replayed commit's time, text),
# PITR_REACHED_EPOCH, PITR_NEXT_COMMIT (the first commit after T, when the server named it),
# PITR_RECOVERY_SECONDS (download + verify + extract + replay), PITR_SEGMENTS (WAL segments
# replayed from the archive), PITR_SOCK, PITR_PORT, PITR_PGBIN, PITR_DATA.
restorable_pitr_recover() {
  local cluster=$1 inv=$2 t=$3 identity=$4 base=$5 t0 ver major
  t0=$(restorable_realtime)
  PITR_DIR="$base/wal"
  PITR_DATA="$base/data"
  PITR_SOCK="$base/sock"
  PITR_AS=()
  if [[ -n $PITR_IMAGE ]]; then
    # The image's server, as its postgres user, sees the directories at the paths used here.
    [[ $(id -u) -eq 0 ]] || restorable_die "recovering in a container from $PITR_IMAGE needs root (its files are handed to the image's postgres user $PITR_OWNER)"
    PITR_MOUNTS=(-v "$base:$base")
    if [[ -n $PITR_INTO ]]; then PITR_MOUNTS+=(-v "$PITR_INTO:$PITR_INTO"); fi
  else
    PITR_OWNER=""
    if [[ $(id -u) -eq 0 ]]; then
      id postgres >/dev/null 2>&1 || restorable_die "recovery runs PostgreSQL as the postgres OS user, which does not exist (apt-get install postgresql)"
      PITR_AS=(runuser -u postgres --) PITR_OWNER=postgres:
    fi
  fi
  [[ $base =~ ^[A-Za-z0-9/._-]+$ ]] || restorable_die "the recovery directory $base has characters a restore_command cannot carry (set TMPDIR to a plain path)"
  mkdir -p -- "$base"
  chmod 0700 -- "$base"
  mkdir -m 0700 -- "$PITR_DIR" "$PITR_DIR/ok" "$PITR_DIR/bad" "$PITR_SOCK"
  # cluster mode: the data directory lives elsewhere (base/data points at it, so the EXIT trap's
  # throwaway teardown stops a server left running there).
  if [[ -n $PITR_INTO ]]; then ln -s -- "$PITR_INTO" "$PITR_DATA"; else mkdir -m 0700 -- "$PITR_DATA"; fi
  # The base backup: manifest, object (sha256 against the manifest), decryption check.
  local mdir="$base/base"
  mkdir -m 0700 -- "$mdir" "$mdir/fetch"
  # The manifest the inventory downloaded (restorable_pitr_manifests), not a second GET.
  cp -- "$inv/manifests/${PITR_BASE_KEY//\//_}" "$mdir/fetch/${PITR_BASE_KEY##*/}" 2>/dev/null || true
  restorable_fetch_manifest "$PITR_BASE_KEY" base "$cluster" "$mdir"
  # The role the recovery connects as: the cluster's bootstrap superuser as the base backup
  # recorded it (POSTGRES_USER in the official image, often not "postgres"); manifests from
  # before it was recorded: postgres, then the configured users, then the source's.
  local recorded source_user stop_lsn
  # shellcheck disable=SC2153 # RESTORABLE_MF is set by restorable_fetch_manifest (lib-restore.sh)
  IFS=$'\x1f' read -r ver recorded source_user stop_lsn < <(jq -r '[.serverVersion, .superuser, .source.user, .stopLsn] | map(. // "" | tostring) | join("\u001f")' "$RESTORABLE_MF")
  if [[ -z $PITR_SU_GIVEN && -n $recorded ]]; then
    PITR_SU=$recorded PITR_SU_TRY=()
  elif [[ -z $PITR_SU_GIVEN ]]; then
    if [[ -n $source_user && $source_user != "$PITR_SU" ]]; then PITR_SU_TRY+=("$source_user"); fi
  fi
  major=${ver%%.*}
  if [[ -z $PITR_IMAGE ]]; then
    restorable_pitr_pgbin "$major" || restorable_die "recovering cluster $cluster (PostgreSQL ${ver:-?}) needs the PostgreSQL $major server binaries on this host (apt-get install postgresql-$major)"
    PITR_PGBIN=$PITR_PGBIN_FOUND
  fi
  local stop_seq
  [[ $stop_lsn =~ ^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$ ]] || restorable_die "base backup manifest $PITR_BASE_KEY has no readable stopLsn: ${stop_lsn:0:40}"
  stop_seq=$(restorable_pitr_lsn_seq "$stop_lsn")

  # The WAL it needs: every archived segment from its stop point to the end of its window (the
  # recovery stops at T long before the end when T is earlier: the fetcher only runs ahead of it
  # by PITR_LOOKAHEAD segments), and the timeline history files.
  local last
  last=$(cut -f5 <<<"$PITR_WIN")
  awk -F '\t' -v f="$stop_seq" -v l="$last" '$1 >= f && $1 <= l' "$inv/wal.tsv" >"$PITR_DIR/need.tsv"
  # What the archive holds for this recovery, as empty files (restore-wal tests a name without a
  # process).
  mkdir -m 0700 -- "$PITR_DIR/names.d"
  { cut -f2 "$PITR_DIR/need.tsv"; cut -f1 "$inv/history.tsv"; } | (cd "$PITR_DIR/names.d" && xargs -r touch --)
  if grep -q '\.age$' "$PITR_DIR/need.tsv" "$inv/history.tsv"; then
    [[ -n $identity ]] || restorable_die "the WAL archive of cluster $cluster is encrypted with age: give the identity file with --identity FILE (or RESTORABLE_AGE_IDENTITY)"
    [[ -r $identity ]] || restorable_die "cannot read the age identity file $identity"
  fi
  local hname hkey
  while IFS=$'\t' read -r hname hkey; do
    restorable_pitr_get_segment "$hkey" "$PITR_DIR/ok/$hname" "$identity" 2>"$PITR_DIR/h.err" || { restorable_stage wal; restorable_die "timeline history $hname: $(restorable_last_line "$PITR_DIR/h.err")"; }
  done <"$inv/history.tsv"
  if [[ -n $PITR_OWNER ]]; then chown -R "$PITR_OWNER" "$base"; fi
  cat >"$PITR_DIR/restore-wal" <<EOF
#!/bin/sh
# restore_command of a restorable point-in-time recovery: serves only the fetcher's verified
# copies; a segment the archive does not hold is "not there" (exit 1) at once. (The server waits
# for it on every segment: only the copy is a process of its own.)
d='$PITR_DIR'
[ -e "\$d/names.d/\$1" ] || exit 1
printf '%s\n' "\$1" >"\$d/asked"
while :; do
  if [ -f "\$d/ok/\$1" ]; then exec cp -- "\$d/ok/\$1" "\$2"; fi
  if [ -f "\$d/bad/\$1" ] || [ -f "\$d/done" ]; then printf '%s\n' "\$1" >>"\$d/refused"; exit 1; fi
  sleep 0.05
done
EOF
  chmod 0755 "$PITR_DIR/restore-wal"
  if [[ -n $PITR_OWNER ]]; then chown "$PITR_OWNER" "$PITR_DIR/restore-wal"; fi
  restorable_pitr_fetcher "$PITR_DIR" "$identity" </dev/null &
  local fpid=$!
  RESTORABLE_BG["$PITR_DIR/fetcher"]="$fpid:fetcher"

  # Streamed into the fresh data directory as it downloads (checked against the manifest's sha256
  # at its end, before any server starts on it: a bad one dies here and the directory goes).
  # GNU tar reads the stream in 1 MiB records (-b 2048, whole records from the pipe: -B), not
  # 10 KiB ones: about an eighth less time writing a data directory of 1.4 GB here.
  local -a tar_io=()
  if tar --version 2>/dev/null | grep -q 'GNU tar'; then tar_io=(-B -b 2048); fi
  # A cluster recovered to keep: its files written back to disk while the rest runs (a syncfs
  # every half second), so that the one flush at the end (restorable_pitr_durable) finds little
  # left to write; a throwaway is never flushed.
  if [[ $PITR_MODE == cluster && -n $PITR_WRITEBACK ]]; then
    (
      trap - EXIT INT TERM HUP ERR
      while sleep 0.5; do sync -f -- "$PITR_DATA/" 2>/dev/null || true; done
    ) </dev/null &
    RESTORABLE_BG["$PITR_DIR/writeback"]="$!:writeback"
  fi
  restorable_stream_object "$mdir" "$identity" tar -x "${tar_io[@]}" -C "$PITR_DATA"
  [[ -f $PITR_DATA/backup_label && -f $PITR_DATA/PG_VERSION ]] || restorable_die "base backup $PITR_BASE_STAMP holds no PostgreSQL data directory with a backup_label"
  local segbytes
  if [[ -n $PITR_OWNER ]]; then chown -R "$PITR_OWNER" "$PITR_DATA/"; fi
  chmod 0700 "$PITR_DATA/"
  segbytes=$(restorable_pitr_tool pg_controldata "$PITR_DATA" 2>/dev/null | awk -F ': *' '/^Bytes per WAL segment/ { print $2 }')
  # The segment size the archive was read with (its base manifests') must be the cluster's own:
  # every position, gap and segment count above depends on it.
  if [[ -n $segbytes && $segbytes != "$PITR_SEG_BYTES" ]]; then
    restorable_die "base backup $PITR_BASE_STAMP of cluster $cluster holds a cluster with WAL segments of $segbytes bytes (pg_controldata), but its archive was read with segments of $PITR_SEG_BYTES bytes ($(if awk -F '\t' '$7 != "-" { f = 1 } END { exit !f }' "$inv/manifests.tsv"; then echo "the walSegmentBytes its base manifests record"; else echo "16 MiB: none of its base manifests records walSegmentBytes"; fi)): nothing was restored"
  fi

  # Our own settings, nothing of the source's (its postgresql.conf may sit elsewhere, name
  # libraries, certificates or ports): a unix socket only, no archiving, the target.
  restorable_stage recover
  PITR_PORT=$((20000 + RANDOM % 40000))
  rm -f -- "$PITR_DATA/standby.signal"
  if [[ $PITR_MODE == cluster ]]; then
    # Kept, set aside while recovering (ALTER SYSTEM settings must not override the recovery's).
    if [[ -f $PITR_DATA/postgresql.auto.conf ]]; then mv -f -- "$PITR_DATA/postgresql.auto.conf" "$PITR_DATA/postgresql.auto.conf.restorable"; fi
  else
    rm -f -- "$PITR_DATA/postgresql.auto.conf"
  fi
  printf 'local all all trust\n' >"$base/pg_hba.conf"
  : >"$base/pg_ident.conf"
  {
    printf "listen_addresses = ''\nport = %d\nunix_socket_directories = '%s'\n" "$PITR_PORT" "$PITR_SOCK"
    printf "hba_file = '%s'\nident_file = '%s'\n" "$base/pg_hba.conf" "$base/pg_ident.conf"
    printf "archive_mode = off\nhot_standby = on\n"
    # No fsync while recovering, in every mode: a throwaway is thrown away, and a recovered
    # cluster is made durable once, after its clean shutdown and before it is renamed into place
    # (restorable_pitr_durable). With fsync on, the server would first flush the whole data
    # directory just written (before replaying anything), then every checkpoint's files.
    printf "fsync = off\n"
    if [[ $PITR_MODE != cluster ]]; then printf "synchronous_commit = off\nautovacuum = off\n"; fi
    printf "max_slot_wal_keep_size = -1\nshared_preload_libraries = ''\n"
    printf "restore_command = '%s %%f %%p'\nrecovery_target_timeline = 'latest'\n" "$PITR_DIR/restore-wal"
    if [[ $t != latest ]]; then
      printf "recovery_target_time = '%s'\nrecovery_target_inclusive = on\nrecovery_target_action = '%s'\n" "$(date -u -d "@$t" '+%Y-%m-%d %H:%M:%S+00')" \
        "$([[ $PITR_MODE == cluster ]] && echo promote || echo pause)"
    fi
    restorable_pitr_hot_standby_opts "$PITR_DATA"
  } >"$base/postgresql.conf"
  : >"$PITR_DATA/recovery.signal"
  if [[ -n $PITR_OWNER ]]; then chown "$PITR_OWNER" "$base/pg_hba.conf" "$base/pg_ident.conf" "$base/postgresql.conf" "$PITR_DATA/recovery.signal"; fi
  # The server runs as our background child (its pid is known from the start, so an early exit
  # is seen at once); the loop below watches the refused segments, its exit and the pause at T.
  restorable_pitr_server_start "$base"
  local pid=$PITR_SERVER_PID state refused why raise restarts=0
  while :; do
    if [[ -s $PITR_DIR/refused ]]; then
      refused=$(head -n 1 "$PITR_DIR/refused")
      why=$(cat "$PITR_DIR/bad/$refused" 2>/dev/null || echo "the fetcher stopped before it")
      restorable_stage wal
      restorable_die "WAL segment $refused of cluster $cluster cannot be used: $why"
    fi
    if ! restorable_alive "$pid"; then
      wait "$pid" 2>/dev/null || true
      restorable_log_file_tail "$base/server.log" 8
      why=$(grep -m1 -E 'FATAL|PANIC' "$base/server.log" | sed 's/^.*\(FATAL\|PANIC\): *//' | cut -c1-300)
      if [[ $why == *"recovery ended before configured recovery target"* ]]; then
        local served next
        served=$(cat "$PITR_DIR/asked" 2>/dev/null || true)
        next=$(grep -m1 . "$inv/gaps.tsv" 2>/dev/null || true)
        restorable_stage wal
        restorable_die "the archived WAL of cluster $cluster ends before $(restorable_iso "$t")${served:+ (the last segment replayed is $served)}${next:+; the archive has a gap: WAL segment $next is missing}"
      fi
      restorable_die "the recovery server stopped: ${why:-$(restorable_last_line "$base/server.log")}"
    fi
    if ! state=$(restorable_pitr_sql "SELECT pg_is_in_recovery()::text || '|' || (CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END)::text" 2>"$base/sql.err") &&
      grep -q 'role ".*" does not exist' "$base/sql.err"; then
      # Not every cluster has a role postgres (the official image's superuser is POSTGRES_USER).
      ((${#PITR_SU_TRY[@]})) || restorable_die "cluster $cluster has no role $PITR_SU to connect as: give --user ROLE (its superuser, POSTGRES_USER of the image)"
      PITR_SU=${PITR_SU_TRY[0]} PITR_SU_TRY=("${PITR_SU_TRY[@]:1}")
      continue
    fi
    if [[ -n $state ]]; then
      if [[ ($t == latest || $PITR_MODE == cluster) && $state == false* ]]; then break; fi
      if [[ $state == "true|true" ]]; then
        # Paused: at the target only when the server says it stopped there. It also pauses on its
        # own (e.g. a hot-standby setting the WAL raised past ours): never take that for the target.
        if [[ $t != latest && $PITR_MODE != cluster ]] && grep -q 'recovery stopping \(before\|after\)' "$base/server.log"; then break; fi
        # The WAL raised a hot-standby setting on the primary past ours: restart with its value
        # (recovery resumes from the last restartpoint; the verified segments stay).
        raise=$(sed -n 's/.*DETAIL: *\([a-z_]*\) = [0-9]* is a lower setting than on the primary server, where its value was \([0-9]*\)\..*/\1 = \2/p' "$base/server.log" | tail -n 1)
        if [[ -n $raise ]] && ((restarts < 5)) && ! grep -qxF -- "$raise" "$base/postgresql.conf"; then
          restarts=$((restarts + 1))
          restorable_log "the WAL raises $raise on the primary: restarting the recovery server with it"
          printf '%s\n' "$raise" >>"$base/postgresql.conf"
          (cd / && restorable_pitr_tool pg_ctl -D "$PITR_DATA" -m fast -w -t 120 stop) >/dev/null 2>&1 || true
          wait "$pid" 2>/dev/null || true
          restorable_pitr_server_start "$base"
          pid=$PITR_SERVER_PID
          continue
        fi
        why=$(grep -E 'WARNING|FATAL|DETAIL|HINT' "$base/server.log" | grep -v 'recovery_target' | tail -n 3 | sed 's/^[^:]*: *//' | paste -sd ' ' - | cut -c1-400)
        local goal="the end of the archive"
        [[ $t == latest ]] || goal=$(restorable_iso "$t")
        restorable_die "the recovery of cluster $cluster paused before reaching $goal, nothing was restored: ${why:-the server paused replay without saying why}"
      fi
      if [[ $t != latest && $state == false* ]]; then restorable_die "the recovery server ended recovery without pausing at $(restorable_iso "$t")"; fi
    fi
    sleep 0.1
  done
  restorable_bg_stop_all
  PITR_RECOVERY_SECONDS=$(restorable_elapsed "$t0")
  local row
  row=$(restorable_pitr_sql "SELECT coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::text, '') || '|' || coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')") ||
    restorable_die "cannot query the recovered server"
  IFS='|' read -r PITR_REACHED_EPOCH PITR_REACHED <<<"$row"
  PITR_NEXT_COMMIT=$(sed -n 's/.*recovery stopping before \(commit\|abort\) of transaction [0-9]*, time \([0-9-]* [0-9:.+-]*\).*/\2/p' "$base/server.log" | tail -n 1)
  # Segments replayed from the archive: from the base backup's stop point to the last one asked for.
  PITR_SEGMENTS=0
  local asked
  asked=$(cat "$PITR_DIR/asked" 2>/dev/null || true)
  if [[ $asked =~ ^[0-9A-F]{24}$ ]]; then PITR_SEGMENTS=$(($(restorable_pitr_seq "$asked") - stop_seq + 1)); fi
  if [[ $t != latest && -n $PITR_REACHED_EPOCH ]] && restorable_pitr_after "$PITR_REACHED_EPOCH" "$t"; then
    restorable_die "recovery went past the time asked for: the last replayed commit is at $PITR_REACHED, after $(restorable_iso "$t")"
  fi
  if [[ $PITR_MODE == cluster ]]; then
    PITR_TIMELINE=$(restorable_pitr_sql "SELECT pg_walfile_name(pg_current_wal_lsn())" | cut -c1-8)
    PITR_TIMELINE=$((16#${PITR_TIMELINE:-0}))
  fi
  if [[ $t == latest ]]; then
    # The end of the archive: every archived segment of the window must have been served.
    local lastname
    lastname=$(tail -n 1 "$PITR_DIR/need.tsv" | cut -f2)
    if [[ -n $lastname && $asked != "$lastname" ]]; then restorable_stage wal; restorable_die "recovery of cluster $cluster ended at WAL segment ${asked:-?}, before the last archived segment $lastname"; fi
  fi
}

# restorable_pitr_stop: stop the recovered server (immediate) and remove its files.
restorable_pitr_stop() {
  if [[ -n $PITR_IMAGE ]]; then
    if [[ -n $PITR_CNAME ]]; then docker rm -f -v "$PITR_CNAME" >/dev/null 2>&1 || true; fi
    return 0
  fi
  [[ -n $PITR_DATA ]] || return 0
  if [[ -f $PITR_DATA/postmaster.pid ]]; then
    (cd / && "${PITR_AS[@]}" "$PITR_PGBIN/pg_ctl" -D "$PITR_DATA" -m immediate -w -t 30 stop) >/dev/null 2>&1 || true
  fi
}

# ---- restore (scripts/restore.sh) ---------------------------------------------------------------
#
# These read restore.sh's globals: name, db, exists, state, force, no_owner, dry_run, identity,
# at_epoch, points, err, work, and its functions say_plan_tail; RESTORABLE_T_* is the resolved target.

# restorable_pitr_plan_db CLUSTER LISTING: the inventory and window check for restoring database
# `name` to `at_epoch`; dies (stage find) naming the nearest dump restore point when the archive
# does not cover that time.
restorable_pitr_plan_db() {
  local cluster=$1 listing=$2 nearest
  restorable_stage find
  PITR_INV="$RESTORABLE_TMP/work/pitr-$cluster"
  restorable_pitr_inventory "$cluster" "$listing" "$PITR_INV"
  restorable_pitr_windows "$cluster" "$PITR_INV"
  if ! restorable_pitr_cover "$PITR_INV" "$at_epoch"; then
    nearest=$(restorable_pitr_nearest_dump "$points" "$name" "$at_epoch")
    restorable_die "the WAL archive of cluster $cluster cannot recover database $name to $(restorable_iso "$at_epoch"), nothing was restored: $PITR_COVER_REASON${PITR_NO_BIN:+ ($PITR_NO_BIN)}; the nearest dump restore point is ${nearest:-none}${nearest:+: restore it with --at ${nearest%% *} --dump}"
  fi
}

# restorable_pitr_restore_db CLUSTER: recover CLUSTER to at_epoch in a throwaway server, then copy
# database `name` into `db` on the target (pg_dump -Fc | pg_restore --single-transaction).
restorable_pitr_restore_db() {
  local cluster=$1 t_start
  local -a opts=(--single-transaction --exit-on-error)
  if [[ $force -eq 1 ]]; then opts+=(--clean --if-exists); fi
  if [[ $no_owner -eq 1 ]]; then opts+=(--no-owner --no-privileges); fi
  restorable_say "Will recover database $name as it was at $(restorable_iso "$at_epoch") from the WAL archive of cluster $cluster"
  restorable_say "  base backup $PITR_BASE_STAMP plus the archived WAL after it (restorable window: $(restorable_pitr_windows_text "$PITR_INV")), every object's sha256 verified"
  restorable_say "  into a throwaway recovery server (stopping before the first commit after $(restorable_iso "$at_epoch")), then database $name only"
  restorable_say "  into database $db on $RESTORABLE_T_DESC; it $state"
  restorable_say "  with pg_dump -Fc | pg_restore ${opts[*]}"
  say_plan_tail
  t_start=$(restorable_realtime)
  RESTORABLE_TA_KIND=local RESTORABLE_TA_DIR="$RESTORABLE_TMP/pg" RESTORABLE_TA_BIN=$PITR_PGBIN
  # A recovery container is removed by restorable_pitr_stop (registered below), not as a local server.
  if [[ -n $PITR_IMAGE ]]; then RESTORABLE_TA_KIND=""; fi
  restorable_pitr_recover "$cluster" "$PITR_INV" "$at_epoch" "$identity" "$RESTORABLE_TMP/pg"
  RESTORABLE_TA_BIN=$PITR_PGBIN
  local next=""
  [[ -z $PITR_NEXT_COMMIT ]] || next="; the next commit, at $PITR_NEXT_COMMIT, is not in it"
  restorable_say "Recovered cluster $cluster: asked for $(restorable_iso "$at_epoch"), reached ${PITR_REACHED:-the end of base backup $PITR_BASE_STAMP (no commit replayed after it)} (the last replayed commit)$next; $PITR_SEGMENTS WAL segment(s) from the archive, $PITR_RECOVERY_SECONDS s"

  restorable_stage restore
  local found
  found=$(PITR_DB=postgres restorable_pitr_sql "SELECT 1 FROM pg_database WHERE datname = $(restorable_sql_literal "$name")" 2>"$err") ||
    restorable_die "cannot query the recovered server: $(restorable_error_line "$err")"
  [[ $found == 1 ]] || restorable_die "database $name did not exist in cluster $cluster at $(restorable_iso "$at_epoch")"
  local t0 created=0
  t0=$(restorable_realtime)
  if [[ $exists != 1 ]]; then
    restorable_sql postgres "CREATE DATABASE $(restorable_sql_ident "$db") TEMPLATE template0" >/dev/null 2>"$err" ||
      restorable_die "cannot create database $db on $RESTORABLE_T_DESC: $(restorable_last_line "$err")"
    created=1
    restorable_log "created database $db"
  fi
  if ! restorable_run restorable_pitr_copy "$work" "$name" "$db" "${opts[@]}"; then
    restorable_log_file_tail "$work/restore.err" 20
    local reason d r
    read -r d r <"$work/pipe.status" || true
    if [[ ${r:-1} -ne 0 ]]; then reason="pg_restore failed: $(restorable_error_line "$work/restore.err")"; else reason="pg_dump of the recovered database failed: $(restorable_error_line "$work/decode.err")"; fi
    if [[ $created -eq 1 ]]; then
      restorable_sql postgres "DROP DATABASE IF EXISTS $(restorable_sql_ident "$db")" >/dev/null 2>&1 && restorable_log "dropped database $db again (this run created it)"
    fi
    restorable_die "restoring into $db failed, nothing was committed: $reason"
  fi
  local t_copy
  t_copy=$(restorable_elapsed "$t0")

  restorable_stage tables
  PITR_DB=$name restorable_pitr_sql "$RESTORABLE_TABLES_SQL" 2>"$err" | sort >"$work/expected" || restorable_die "cannot list the recovered tables: $(restorable_error_line "$err")"
  restorable_sql "$db" "$RESTORABLE_TABLES_SQL" >"$work/actual" 2>"$err" || restorable_die "cannot list the restored tables: $(restorable_last_line "$err")"
  sort -o "$work/actual" "$work/actual"
  local diff_reason
  if ! diff_reason=$(restorable_compare_tables "$work/expected" "$work/actual"); then
    restorable_die "restored database $db differs from the recovered one: ${diff_reason//manifest/recovered database}"
  fi
  restorable_say "Restored database $name into $db on $RESTORABLE_T_DESC as of $(restorable_iso "$at_epoch") (last commit ${PITR_REACHED:-none after the base backup}): $(wc -l <"$work/actual") tables, as in the recovered cluster; $(restorable_elapsed "$t_start") s (recovery $PITR_RECOVERY_SECONDS s, copy $t_copy s)."
}

# restorable_pitr_copy DIR SRC_DB DST_DB PG_RESTORE_OPTS...: pg_dump -Fc of SRC_DB in the recovered
# server | pg_restore into DST_DB on the target; statuses in DIR/pipe.status (as restorable_decode_into).
restorable_pitr_copy() {
  local dir=$1 src=$2 dst=$3 st
  shift 3
  set +e
  restorable_pitr_tool pg_dump -Fc -h "$PITR_SOCK" -p "$PITR_PORT" -U "$PITR_SU" -d "$src" 2>"$dir/decode.err" | restorable_tgt_run pg_restore "$dst" "$@" 2>"$dir/restore.err"
  st=("${PIPESTATUS[@]}")
  set -e
  printf '%s %s\n' "${st[0]}" "${st[1]}" >"$dir/pipe.status"
  [[ ${st[0]} -eq 0 && ${st[1]} -eq 0 ]]
}

# restorable_pitr_list JSON KIND NAME LISTING: restore --list's point-in-time windows, per archived
# cluster (filtered to the cluster of --database NAME; none for --globals / --volume).
restorable_pitr_list() {
  local json=$1 kind=$2 name=$3 listing=$4 cluster dbs inv s e et f l nb gap
  [[ -z $kind || $kind == postgres ]] || return 0
  # The configured clusters, and any other the bucket holds an archive of (a new machine in a
  # disaster has no pitr section in its conf).
  local -a clusters=("${RESTORABLE_PITR_CLUSTER[@]}")
  mapfile -t -O "${#clusters[@]}" clusters < <(jq -r --arg p "${RESTORABLE_PREFIX}wal/" 'select(.key | startswith($p)) | .key[($p | length):] | split("/")[0]' "$listing" |
    sort -u | grep -vxF -f <(printf '%s\n' "${RESTORABLE_PITR_CLUSTER[@]}" "") || true)
  for cluster in "${clusters[@]}"; do
    dbs=$(restorable_pitr_dbs_of "$cluster" | paste -sd, - | sed 's/,/, /g')
    if [[ -n $name ]] && ! restorable_pitr_dbs_of "$cluster" | grep -qxF -- "$name"; then continue; fi
    inv="$RESTORABLE_TMP/work/pitr-$cluster"
    PITR_PGBIN=""
    restorable_pitr_inventory "$cluster" "$listing" "$inv"
    restorable_pitr_windows "$cluster" "$inv"
    if [[ $json -eq 1 ]]; then
      jq -cn --arg cluster "$cluster" --arg dbs "$dbs" --rawfile w "$inv/windows.tsv" --argjson bases "$(wc -l <"$inv/bases.tsv")" \
        --argjson segments "$(wc -l <"$inv/wal.tsv")" --argjson segbytes "$PITR_SEG_BYTES" --arg note "$PITR_NO_BIN" '
        {kind: "pitr", cluster: $cluster, databases: ($dbs | split(", ") | map(select(. != ""))), baseBackups: $bases, walSegments: $segments, walSegmentBytes: $segbytes,
         windows: ($w | split("\n") | map(select(. != "") | split("\t") | {from: (.[0] | tonumber | todate), to: (.[1] | tonumber | todate),
           lastCommit: .[2], gapAfter: (if .[6] == "-" then null else .[6] end)})), note: (if $note == "" then null else $note end)}'
      continue
    fi
    printf '\npoint in time: cluster %s (databases %s): restorable to the second with --at\n' "$cluster" "${dbs:-none configured}"
    printf '  %d base backup(s), %d WAL segment(s) of %s in s3://%s/%swal/%s/\n' "$(wc -l <"$inv/bases.tsv")" "$(wc -l <"$inv/wal.tsv")" "$(restorable_pitr_mib "$PITR_SEG_BYTES")" "$RESTORABLE_BUCKET" "$RESTORABLE_PREFIX" "$cluster"
    if [[ ! -s $inv/windows.tsv ]]; then printf '  window   none (no base backup followed by archived WAL)\n'; fi
    while IFS=$'\t' read -r s e et f l nb gap; do
      printf '  window   %s .. %s  (from %d base backup(s); last archived commit %s)\n' "$(restorable_iso "$s")" "$(restorable_iso "$e")" "$nb" "$et"
      [[ $gap == - ]] || printf '           then a gap: WAL segment %s is missing\n' "$gap"
    done <"$inv/windows.tsv"
    [[ -z $PITR_NO_BIN ]] || printf '  note     %s\n' "$PITR_NO_BIN"
  done
}

# ---- the drill (scripts/restore-drill.sh) -------------------------------------------------------
#
# restorable_pitr_drill_item CLUSTER OUT: one archived cluster, in a drill child (drill_child):
#   find        the archive's base backups, WAL segments and windows
#   continuity  every WAL segment from the newest base backup's stop point to the newest one is
#               in the bucket (a gap fails naming the first missing segment)
#   rpo         the archive's achieved RPO (what the archiver last measured, lib-pitr.sh)
#   recover     to a random second T of the newest window (lib-pitr-restore.sh recovery)
#   target      recovery stopped at T: the last replayed commit at or before T, and the server held
#               back a later commit (it names the first one after T)
#   tables      each of the cluster's configured databases exists, and holds every table that both
#               its dump restore point at or before T and its newest dump list
#   checks      RESTORABLE_DRILL_CHECKS in each of them
#   rto         the recovery time against the RTO objective
# Reads the drill's globals: now, identity, databases; writes its JSON result to OUT on any exit.
# shellcheck disable=SC2317 # invoked through drill_child, its handler by the trap
restorable_pitr_drill_item() {
  local cluster=$1 out=$2 inv="$RESTORABLE_TMP/work/pitr-$1" base="$RESTORABLE_TMP/pg"
  local target="" wfrom="" wto="" base_stamp="" cont_first="" cont_last="" cont_n=null rpo_age=null rpo_text=""
  local rec=null tables="[]" checks="[]" next="" dbs
  RESTORABLE_FAIL_STAGE="" RESTORABLE_FAIL_REASON=""
  pitr_drill_exit() {
    local rc=$? item_result item_failure
    drill_item_end "$rc" "cluster $cluster: "
    restorable_pitr_stop
    rm -rf -- "$base"
    jq -cn --arg c "$cluster" --arg dbs "$dbs" --arg wf "$wfrom" --arg wt "$wto" --arg t "$target" --arg reached "$PITR_REACHED" \
      --arg next "$next" --arg bs "$base_stamp" --arg cf "$cont_first" --arg cl "$cont_last" --argjson cn "$cont_n" \
      --argjson segs "${PITR_SEGMENTS:-0}" --argjson rpoa "$rpo_age" --arg rpot "$rpo_text" --argjson rpotg "$RESTORABLE_RPO_SECONDS" \
      --argjson rec "$rec" --argjson rtot "$RESTORABLE_RTO_SECONDS" --argjson tables "$tables" --argjson checks "$checks" \
      --arg result "$item_result" --argjson failure "$item_failure" '
      def orNull: if . == "" then null else . end;
      {cluster: $c, databases: ($dbs | split("\n") | map(select(. != ""))),
       window: (if $wf == "" then null else {from: $wf, to: $wt} end), baseBackup: ($bs | orNull),
       target: ($t | orNull), reached: ($reached | orNull), nextCommit: ($next | orNull), walSegmentsReplayed: $segs,
       continuity: (if $cf == "" then null else {from: $cf, to: $cl, segments: $cn} end),
       rpo: (if $rpoa == null then null else {achievedSeconds: $rpoa, targetSeconds: $rpotg, ok: ($rpoa <= $rpotg), source: $rpot} end),
       recoverySeconds: $rec,
       rto: (if $rec == null then null else {achievedSeconds: $rec, targetSeconds: $rtot, ok: ($rec <= $rtot)} end),
       tables: $tables, checks: $checks, result: $result, failure: $failure}' >"$out"
    exit "$rc"
  }
  trap pitr_drill_exit EXIT
  trap - INT TERM HUP
  RESTORABLE_STAGE_FILE="$RESTORABLE_TMP/work/stage"
  dbs=$(restorable_pitr_dbs_of "$cluster")

  restorable_stage find
  restorable_pitr_inventory "$cluster" "$RESTORABLE_TMP/work/listing.jsonl" "$inv"
  restorable_pitr_windows "$cluster" "$inv"
  [[ -z $PITR_NO_BIN ]] || restorable_die "$PITR_NO_BIN"
  [[ -s $inv/bases.tsv ]] || restorable_die "no base backup of cluster $cluster under s3://$RESTORABLE_BUCKET/$RESTORABLE_PREFIX (backup-base has not run)"
  [[ -s $inv/wal.tsv ]] || restorable_die "no WAL of cluster $cluster under s3://$RESTORABLE_BUCKET/${RESTORABLE_PREFIX}wal/$cluster/ (is the wal-archiver running?)"

  restorable_stage continuity
  local stop_seq first last gap
  IFS=$'\t' read -r _ base_stamp _ stop_seq _ _ < <(tail -n 1 "$inv/bases.tsv")
  last=$(tail -n 1 "$inv/wal.tsv" | cut -f1)
  cont_first=$(restorable_pitr_seg_name "$((16#$(tail -n 1 "$inv/wal.tsv" | cut -f2 | cut -c1-8)))" "$stop_seq")
  cont_last=$(tail -n 1 "$inv/wal.tsv" | cut -f2)
  read -r first _ < <(awk -F '\t' -v s="$stop_seq" '$1 <= s + 1 && s <= $2' "$inv/runs.tsv") || first=""
  [[ -n $first ]] || restorable_die "the WAL archive of cluster $cluster does not hold WAL segment $cont_first, where the newest base backup ($base_stamp) ends"
  gap=$(awk -F '\t' -v s="$stop_seq" '$1 > s + 1 { print NR; exit }' "$inv/runs.tsv")
  if [[ -n $gap ]]; then
    restorable_die "the WAL archive of cluster $cluster has a gap after the newest base backup ($base_stamp): WAL segment $(sed -n "$((gap - 1))p" "$inv/gaps.tsv") is missing"
  fi
  cont_n=$((last - stop_seq + 1))
  restorable_log "cluster $cluster: WAL continuous from the newest base backup $base_stamp ($cont_first) to $cont_last: $cont_n segment(s)"

  restorable_stage rpo
  local d1
  d1=$(head -n 1 <<<"$dbs")
  if [[ -n $d1 ]] && restorable_pitr_rpo "$d1"; then
    rpo_age=$PITR_RPO_AGE rpo_text=$PITR_RPO_TEXT
  else
    rpo_age=$((now - $(tail -n 1 "$inv/windows.tsv" | cut -f2))) rpo_text="the newest archived commit"
  fi
  if ((rpo_age > RESTORABLE_RPO_SECONDS)); then restorable_die "$rpo_text, more than the RPO objective of $(restorable_human_age "$RESTORABLE_RPO_SECONDS")"; fi

  restorable_stage recover
  local s e span t
  IFS=$'\t' read -r s e _ < <(tail -n 1 "$inv/windows.tsv")
  wfrom=$(restorable_iso "$s") wto=$(restorable_iso "$e")
  span=$((e - s))
  # A random whole second of the window, before its last commit (so that a later commit exists
  # for the recovery to stop before).
  if ((span >= 2)); then t=$((s + (RANDOM * 32768 + RANDOM) % span)); else t=$s; fi
  target=$(restorable_iso "$t")
  restorable_pitr_cover "$inv" "$t" || restorable_die "$PITR_COVER_REASON"
  restorable_log "cluster $cluster: recovering to $target, a random second of the window $wfrom .. $wto, from base backup $PITR_BASE_STAMP"
  restorable_pitr_recover "$cluster" "$inv" "$t" "$identity" "$base"
  rec=$PITR_RECOVERY_SECONDS
  RESTORABLE_T_KIND=native RESTORABLE_T_HOST=$PITR_SOCK RESTORABLE_T_PORT=$PITR_PORT RESTORABLE_T_USER=$PITR_SU RESTORABLE_T_BIN="$PITR_PGBIN/" RESTORABLE_T_DESC="the recovered cluster $cluster"
  # In a recovery container: its client tools, over the recovery's socket.
  if [[ -n $PITR_IMAGE ]]; then RESTORABLE_T_KIND=exec RESTORABLE_T_CID=$PITR_CNAME RESTORABLE_T_SOCK=$PITR_SOCK; fi

  restorable_stage target
  next=$PITR_NEXT_COMMIT
  if ((t < e)); then
    [[ -n $next ]] || restorable_die "recovery to $target did not stop before a later commit (the archive holds commits up to $wto)"
    local ne
    ne=$(date -u -d "$next" +%s.%N) || restorable_die "cannot read the time of the first commit after the target: $next"
    restorable_pitr_after "$ne" "$t" || restorable_die "recovery to $target stopped before a commit at $next, not after the target"
  fi
  restorable_log "cluster $cluster: asked for $target, reached ${PITR_REACHED:-the end of the base backup} (the last replayed commit)${next:+; the next commit, at $next, was held back}; $PITR_SEGMENTS WAL segment(s), $rec s"

  restorable_stage tables
  local db mf_before mf_newest p err="$RESTORABLE_TMP/work/pitr.err"
  while IFS= read -r db; do
    [[ -n $db ]] || continue
    printf '%s\n' "${databases[@]}" | grep -qxF -- "$db" || continue
    [[ $(restorable_sql postgres "SELECT 1 FROM pg_database WHERE datname = $(restorable_sql_literal "$db")" 2>"$err") == 1 ]] ||
      restorable_die "database $db does not exist in cluster $cluster recovered to $target"
    restorable_sql "$db" "$RESTORABLE_TABLES_SQL" 2>"$err" | sort >"$inv/actual.$db" || restorable_die "cannot list the tables of $db: $(restorable_error_line "$err")"
    # Tables both the dump at or before T and the newest dump hold existed at T.
    : >"$inv/expected.$db"
    p=$(restorable_pick "$RESTORABLE_TMP/work/points.tsv" postgres "$db" "$t")
    mf_before=$(cut -f5 <<<"$p")
    mf_newest=$(restorable_pick "$RESTORABLE_TMP/work/points.tsv" postgres "$db" | cut -f5)
    if [[ -n $mf_before && -n $mf_newest ]] && restorable_s3_fetch "$mf_before" "$inv/mb.$db" 0 && restorable_s3_fetch "$mf_newest" "$inv/mn.$db" 0; then
      comm -12 <(restorable_manifest_tables "$inv/mb.$db") <(restorable_manifest_tables "$inv/mn.$db") >"$inv/expected.$db"
    fi
    local missing
    missing=$(comm -23 "$inv/expected.$db" "$inv/actual.$db" | paste -sd, - | sed 's/,/, /g')
    tables=$(jq -c --arg d "$db" --rawfile a "$inv/actual.$db" --rawfile x "$inv/expected.$db" '. + [{database: $d,
      recovered: ($a | split("\n") | map(select(. != ""))), expected: ($x | split("\n") | map(select(. != "")) | length),
      missing: (($x | split("\n") | map(select(. != ""))) - ($a | split("\n")))}]' <<<"$tables")
    [[ -z $missing ]] || restorable_die "database $db recovered to $target lacks tables its dumps before and after hold: $missing"
  done <<<"$dbs"

  restorable_stage checks
  local sql outp failed="" i
  while IFS= read -r db; do
    [[ -n $db ]] || continue
    printf '%s\n' "${databases[@]}" | grep -qxF -- "$db" || continue
    i=0
    for sql in "${RESTORABLE_DRILL_CHECKS[@]}"; do
      i=$((i + 1))
      if outp=$(restorable_sql "$db" "$sql" 2>"$err") && [[ $outp == t ]]; then
        checks=$(jq -c --arg d "$db" --arg s "$sql" '. + [{database: $d, sql: $s, ok: true}]' <<<"$checks")
        continue
      fi
      outp=${outp:-$(restorable_error_line "$err")}
      checks=$(jq -c --arg d "$db" --arg s "$sql" --arg o "${outp:0:200}" '. + [{database: $d, sql: $s, ok: false, output: $o}]' <<<"$checks")
      failed=${failed:-"$db: check $i ($sql) returned \"${outp:0:200}\", not true"}
    done
  done <<<"$dbs"
  [[ -z $failed ]] || restorable_die "$failed"

  restorable_stage rto
  restorable_rto_check "recovering cluster $cluster to $target" "$rec"
  restorable_log "cluster $cluster: point-in-time drill passed; RPO $(restorable_human_age "$rpo_age") ($rpo_text), recovery $rec s"
  exit 0
}

# ---- disaster recovery: the whole cluster (restore --cluster NAME --at TIME|latest --data-dir DIR | --target-volume VOL)
#
# restorable_pitr_restore_cluster CLUSTER AT DIR VOLUME IMAGE: recover the whole cluster (roles,
# every database, settings) at AT (epoch seconds) or at the end of the archive ("latest") into DIR,
# a new data directory (missing or empty; never an existing cluster), or into the Docker volume
# VOLUME (the data directory of a stopped compose service). It is recovered in a staging directory
# (beside DIR: .DIR.restorable-<pid>; for a volume: in the temp dir), promoted (a new timeline),
# stopped cleanly and only then renamed to DIR or copied into the volume: a failure leaves DIR or
# the volume as it was. The base backup's own postgresql.conf, pg_hba.conf and postgresql.auto.conf
# are kept; recovery.signal is gone (the server removed it when it promoted).
# The recovery server: the host's PostgreSQL server binaries of the cluster's major version, or a
# container from IMAGE (--image; default the drill image) when IMAGE is given, for a volume, and
# when the host has no such binaries but docker answers. A volume's root ends owned by the image's
# postgres uid:gid with mode 0700, as the official image's PGDATA. A volume a running container
# uses is refused; a non-empty one without --force (force: its content is first copied into the new
# volume VOLUME.replaced-<stamp> and checked, then removed from VOLUME). Reads restore.sh's
# globals: identity, dry_run, force, user, now.
restorable_pitr_restore_cluster() {
  local cluster=$1 at=$2 dir=${3%/} vol=$4 image=$5 parent staging listing="$RESTORABLE_TMP/work/listing.jsonl" vol_state=""
  restorable_stage target
  if [[ -n $vol ]]; then
    image=${image:-$RESTORABLE_DRILL_IMAGE}
    restorable_pitr_volume_check "$vol" "$image"
    vol_state=$PITR_VOL_STATE
    staging="$RESTORABLE_TMP/recovered"
  else
    [[ -n $dir ]] || restorable_usage "--cluster needs --data-dir DIR (a new data directory) or --target-volume VOL"
    [[ $dir == /* ]] || dir="$PWD/$dir"
    parent=$(dirname -- "$dir")
    [[ -d $parent ]] || restorable_die "the parent directory of $dir does not exist"
    if [[ -e $dir ]]; then
      [[ -d $dir ]] || restorable_die "$dir exists and is not a directory"
      [[ -z $(ls -A -- "$dir") ]] || restorable_die "$dir is not empty; refusing to recover into it (restore never overwrites a data directory: move it away, or give a new one)"
    fi
    staging="$parent/.$(basename -- "$dir").restorable-$$"
  fi
  [[ $staging =~ ^[A-Za-z0-9/._-]+$ ]] || restorable_die "the path $staging has characters this version does not handle (letters, digits, / . _ - only)"
  restorable_stage find
  PITR_INV="$RESTORABLE_TMP/work/pitr-$cluster"
  restorable_pitr_inventory "$cluster" "$listing" "$PITR_INV"
  [[ -s $PITR_INV/bases.tsv || -s $PITR_INV/wal.tsv ]] || restorable_die "no WAL archive of cluster $cluster under s3://$RESTORABLE_BUCKET/$RESTORABLE_PREFIX (restore --list shows the archived clusters)"
  # The recovery server: the host's binaries, or the image's (asked for, for a volume, or when the
  # host has none of the cluster's major version).
  local ver major runtime
  ver=$(tail -n 1 "$PITR_INV/bases.tsv" | cut -f5)
  major=${ver%%.*}
  if [[ -n $major ]]; then
    if [[ -n $image ]]; then
      restorable_pitr_use_image "$image" "$major"
    elif ! restorable_pitr_pgbin "$major" && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
      restorable_log "this host has no PostgreSQL $major server binaries: recovering in a container from $RESTORABLE_DRILL_IMAGE (the drill image; --image IMG for another)"
      restorable_pitr_use_image "$RESTORABLE_DRILL_IMAGE" "$major"
    fi
  fi
  if [[ -n $PITR_IMAGE ]]; then
    runtime="in a container from $PITR_IMAGE (its PostgreSQL $major, as its postgres user $PITR_OWNER)"
  else
    runtime="with this host's PostgreSQL $major server binaries"
    if [[ -n $major && $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$parent"; then
      restorable_die "the postgres OS user cannot reach $parent (it runs the recovery and owns the result)"
    fi
  fi
  restorable_pitr_windows "$cluster" "$PITR_INV"
  local t=$at what="its latest archived point" into="the new data directory $dir (through $staging, renamed when done)"
  [[ $at == latest ]] || what=$(restorable_iso "$at")
  if [[ -n $vol ]]; then into="Docker volume $vol (it $vol_state), through $staging; owned by $PITR_OWNER (the image's postgres user), mode 0700, as the image's PGDATA"; fi
  if ! restorable_pitr_cover "$PITR_INV" "$at"; then
    restorable_die "the WAL archive of cluster $cluster cannot recover it to $what, nothing was restored: $PITR_COVER_REASON${PITR_NO_BIN:+ ($PITR_NO_BIN)}"
  fi
  if [[ $at == latest ]]; then what="the end of its WAL archive (the last archived commit: $(cut -f3 <<<"$PITR_WIN"))"; fi
  restorable_say "Will recover the whole cluster $cluster (roles, every database, settings) to $what"
  restorable_say "  from base backup $PITR_BASE_STAMP plus the archived WAL after it (restorable window: $(restorable_pitr_windows_text "$PITR_INV")), every object's sha256 verified"
  restorable_say "  $runtime, promoted to a new timeline"
  restorable_say "  into $into"
  if [[ $dry_run -eq 1 ]]; then restorable_say "Dry run: nothing restored."; exit 0; fi
  restorable_lock restore optional
  mkdir -m 0700 -- "$staging" || restorable_die "cannot create $staging"
  # On failure: stop the server (the EXIT trap does too) and remove the staging directory.
  PITR_STAGING=$staging
  # shellcheck disable=SC2317 # called by the EXIT trap in lib-restore.sh
  restorable_on_finish() {
    if [[ -n $PITR_IMAGE ]]; then restorable_pitr_stop; fi
    if [[ $1 -ne 0 && -n $PITR_STAGING && -d $PITR_STAGING ]]; then
      restorable_pitr_stop
      rm -rf -- "$PITR_STAGING"
      restorable_log "removed the staging directory $PITR_STAGING; ${vol:+volume }${vol:-$dir} is as it was"
    fi
  }
  # The host's server is the EXIT trap's throwaway (it stops it); a container is stopped above.
  RESTORABLE_TA_KIND=local RESTORABLE_TA_DIR="$RESTORABLE_TMP/pg" RESTORABLE_TA_BIN=$PITR_PGBIN
  if [[ -n $PITR_IMAGE ]]; then RESTORABLE_TA_KIND=""; fi
  # The role to connect as: --user, else postgres, then the configured users of the cluster.
  if [[ -n ${user:-} ]]; then PITR_SU=$user PITR_SU_TRY=() PITR_SU_GIVEN=1; else
    PITR_SU=postgres
    mapfile -t PITR_SU_TRY < <(for i in "${!RESTORABLE_PG_DATABASE[@]}"; do [[ $(restorable_pitr_cluster_of "$i") != "$cluster" ]] || printf '%s\n' "${RESTORABLE_PG_USER[i]:-}"; done | grep -vx -e '' -e postgres | sort -u)
  fi
  PITR_MODE=cluster PITR_INTO=$staging PITR_WRITEBACK=
  if [[ -z $vol ]]; then PITR_WRITEBACK=1; fi
  restorable_pitr_recover "$cluster" "$PITR_INV" "$t" "$identity" "$RESTORABLE_TMP/pg"
  RESTORABLE_TA_BIN=$PITR_PGBIN
  local dbs
  dbs=$(restorable_pitr_sql "SELECT string_agg(datname, ', ' ORDER BY datname) FROM pg_database WHERE NOT datistemplate") || restorable_die "cannot query the recovered cluster"
  restorable_stage stop
  restorable_pitr_stop_clean "$staging"
  if [[ -f $staging/postgresql.auto.conf.restorable ]]; then mv -f -- "$staging/postgresql.auto.conf.restorable" "$staging/postgresql.auto.conf"; fi
  rm -f -- "$staging/recovery.signal"
  local done_in
  if [[ -n $vol ]]; then
    restorable_stage restore
    restorable_pitr_into_volume "$staging" "$vol" "$cluster"
    rm -rf -- "$staging"
    done_in="Docker volume $vol (owned by $PITR_OWNER, mode 0700${PITR_VOL_ASIDE:+; its previous content is in volume $PITR_VOL_ASIDE})"
  else
    restorable_pitr_durable "$staging"
    if [[ -d $dir ]]; then rmdir -- "$dir" || restorable_die "cannot replace the empty directory $dir"; fi
    mv -- "$staging" "$dir" || restorable_die "cannot rename $staging to $dir"
    sync -- "$parent" 2>"$RESTORABLE_TMP/work/sync.err" || restorable_die "cannot flush the rename of $staging to $dir to disk: $(restorable_last_line "$RESTORABLE_TMP/work/sync.err")"
    done_in=$dir
    [[ -z $PITR_IMAGE ]] || done_in+=" (owned by $PITR_OWNER, the postgres user of $PITR_IMAGE)"
  fi
  PITR_STAGING=""
  restorable_say "Recovered cluster $cluster into $done_in: asked for $what, reached ${PITR_REACHED:-the end of base backup $PITR_BASE_STAMP (no commit replayed after it)} (the last replayed commit)${PITR_NEXT_COMMIT:+; the next commit, at $PITR_NEXT_COMMIT, is not in it}; databases: $dbs; now on timeline $PITR_TIMELINE; $PITR_SEGMENTS WAL segment(s) from the archive, $PITR_RECOVERY_SECONDS s."
  if [[ -n $vol ]]; then
    restorable_say "  Start the service that mounts it as its data directory (docker compose up -d SERVICE) with an image of PostgreSQL $major; the wal-archiver then archives timeline $PITR_TIMELINE under new segment names (the old timeline's segments stay as they are), and take a base backup (backup-base) right away."
  else
    restorable_say "  Start it with its own configuration (pg_ctl -D $dir start, or as the volume of the database service); the wal-archiver then archives timeline $PITR_TIMELINE under new segment names (the old timeline's segments stay as they are), and take a base backup (backup-base) right away."
  fi
}

# restorable_pitr_durable DIR: the stopped, recovered cluster in DIR on disk (the server recovered
# with fsync off): one syncfs of the filesystem(s) holding it and its pg_wal. Dies at the current
# stage when the kernel reports a write error.
restorable_pitr_durable() {
  local dir=$1 err="$RESTORABLE_TMP/work/sync.err"
  sync -f -- "$dir" "$dir/pg_wal/" 2>"$err" || restorable_die "cannot flush the recovered cluster in $dir to disk: $(restorable_last_line "$err")"
}

# restorable_pitr_stop_clean DIR: stop the recovered server in DIR with a fast shutdown and check
# that it shut down cleanly (dies at the current stage otherwise). The server is our child
# (restorable_pitr_server_start): SIGINT to it is a fast shutdown, and its exit is seen as soon as
# it happens (pg_ctl -w looks every 100 ms); the control file then says whether it was clean.
restorable_pitr_stop_clean() {
  local dir=$1 out="$RESTORABLE_TMP/work/stop.out" i pm=""
  if [[ -z $PITR_IMAGE ]]; then
    { IFS= read -r pm <"$dir/postmaster.pid"; } 2>/dev/null || true
    [[ $pm =~ ^[0-9]+$ ]] || restorable_die "the recovered cluster's server left no postmaster.pid in $dir"
    kill -INT "$pm" 2>"$out" || restorable_die "cannot stop the recovered cluster's server (pid $pm): $(restorable_last_line "$out")"
  else
    # The container's main process is the server: SIGINT is a fast shutdown, and the attached
    # client exits when it does (pg_ctl by docker exec would be killed with the container).
    docker kill --signal INT "$PITR_CNAME" >"$out" 2>&1 || restorable_die "cannot stop the recovery container $PITR_CNAME: $(restorable_last_line "$out")"
  fi
  for ((i = 0; i < 15000; i++)); do restorable_alive "$PITR_SERVER_PID" || break; sleep 0.02; done
  restorable_alive "$PITR_SERVER_PID" && restorable_die "the recovered cluster did not stop within 300 s"
  wait "$PITR_SERVER_PID" 2>/dev/null || true
  PITR_CNAME=""
  restorable_pitr_tool pg_controldata "$dir" >"$out" 2>&1 || restorable_die "cannot read the recovered cluster's control file: $(restorable_last_line "$out")"
  grep -q '^Database cluster state: *shut down$' "$out" || restorable_die "the recovered cluster did not stop cleanly: $(grep '^Database cluster state' "$out" || restorable_last_line "$out")"
}

# restorable_pitr_volume_check VOL IMAGE: may the recovered cluster go into Docker volume VOL?
# Refuses (stage target) a volume that a running container uses, and a non-empty one without
# --force. Sets PITR_VOL_STATE (what the plan says about it) and PITR_VOL_EXISTS / _NONEMPTY.
PITR_VOL_STATE="" PITR_VOL_EXISTS=0 PITR_VOL_NONEMPTY=0 PITR_VOL_ASIDE=""
restorable_pitr_volume_check() {
  local vol=$1 image=$2 err="$RESTORABLE_TMP/work/volume.err" running stopped first
  docker info >/dev/null 2>"$err" || restorable_die "recovering into volume $vol needs docker, which is not reachable: $(restorable_last_line "$err")"
  running=$(docker ps --filter "volume=$vol" --format '{{.Names}}' 2>"$err" | paste -sd, -) || restorable_die "cannot list the containers using volume $vol: $(restorable_last_line "$err")"
  [[ -z $running ]] || restorable_die "volume $vol is in use by running container(s) ${running//,/, }: stop the service first (docker compose stop SERVICE); nothing was restored"
  stopped=$(docker ps -a --filter "volume=$vol" --format '{{.Names}}' 2>/dev/null | paste -sd, - | sed 's/,/, /g')
  PITR_VOL_EXISTS=0 PITR_VOL_NONEMPTY=0 PITR_VOL_STATE="does not exist yet: it will be created"
  if docker volume inspect "$vol" >/dev/null 2>&1; then
    PITR_VOL_EXISTS=1 PITR_VOL_STATE="exists and is empty"
    first=$(docker run --rm --network none --log-driver none -v "$vol:/data:ro" --entrypoint ls "$image" -A /data 2>"$err") ||
      restorable_die "cannot look into volume $vol with $image: $(restorable_last_line "$err")"
    if [[ -n $first ]]; then
      PITR_VOL_NONEMPTY=1
      [[ ${force:-0} -eq 1 ]] || restorable_die "volume $vol is not empty; refusing to recover into it without --force (which first moves its content into a new volume $vol.replaced-<stamp>); nothing was restored"
      PITR_VOL_STATE="is NOT empty: --force, its content is first moved into the new volume $vol.replaced-$(restorable_stamp "$now")"
    fi
  fi
  if [[ -n $stopped ]]; then PITR_VOL_STATE+="; used by the stopped container(s) $stopped"; fi
}

# restorable_pitr_into_volume DIR VOL CLUSTER: copy the stopped, recovered data directory DIR into
# the root of Docker volume VOL (created when missing), with the image's tar as root, owner and
# modes kept; the root is then owned by PITR_OWNER with mode 0700, and all of it flushed to disk
# (sync) before it returns. A non-empty VOL (--force) is first copied into the new volume
# VOL.replaced-<stamp>, the copy compared by its file list, and only then emptied: its old content
# stays recoverable there (PITR_VOL_ASIDE).
restorable_pitr_into_volume() {
  local dir=$1 vol=$2 cluster=$3 err="$RESTORABLE_TMP/work/volume.err" running st
  running=$(docker ps --filter "volume=$vol" --format '{{.Names}}' 2>/dev/null | paste -sd, -)
  [[ -z $running ]] || restorable_die "volume $vol came into use by running container(s) ${running//,/, } during the recovery; nothing was written to it"
  if ! docker volume inspect "$vol" >/dev/null 2>&1; then
    docker volume create "$vol" >/dev/null 2>"$err" || restorable_die "cannot create volume $vol: $(restorable_last_line "$err")"
  elif [[ $PITR_VOL_NONEMPTY -eq 1 ]]; then
    PITR_VOL_ASIDE="$vol.replaced-$(restorable_stamp "$now")"
    # (docker volume create of an existing name succeeds: never mix into another run's copy)
    if docker volume inspect "$PITR_VOL_ASIDE" >/dev/null 2>&1; then restorable_die "volume $PITR_VOL_ASIDE already exists; $vol is as it was (run again in a second)"; fi
    docker volume create --label "restorable.replaced=$vol" --label "restorable.recovery=$cluster" "$PITR_VOL_ASIDE" >/dev/null 2>"$err" ||
      restorable_die "cannot create volume $PITR_VOL_ASIDE for the current content of $vol: $(restorable_last_line "$err"); $vol is as it was"
    # shellcheck disable=SC2016 # expanded by the image's sh
    if ! docker run --rm --network none --log-driver none --user 0:0 -v "$vol:/from" -v "$PITR_VOL_ASIDE:/to" --entrypoint sh "$PITR_IMAGE" -c '
      cp -a /from/. /to/ || exit 3
      [ "$(cd /from && find . | sort | cksum)" = "$(cd /to && find . | sort | cksum)" ] || { echo "the copy differs from the original" >&2; exit 3; }
      find /from -mindepth 1 -maxdepth 1 -exec rm -rf {} + || exit 4' 2>"$err"; then
      restorable_die "moving the content of $vol into $PITR_VOL_ASIDE failed: $(restorable_last_line "$err"); $vol still holds its content (volume $PITR_VOL_ASIDE holds a copy)"
    fi
    restorable_log "moved the previous content of volume $vol into volume $PITR_VOL_ASIDE"
  fi
  set +e
  # shellcheck disable=SC2016 # expanded by the image's sh
  tar --numeric-owner -C "$dir" -cf - . 2>"$err.tar" |
    docker run --rm -i --network none --log-driver none --user 0:0 -v "$vol:/data" --entrypoint sh "$PITR_IMAGE" \
      -c 'tar --numeric-owner -C /data -xf - && chown "$0" /data && chmod 0700 /data && sync' "$PITR_OWNER" 2>"$err"
  st=("${PIPESTATUS[@]}")
  set -e
  if [[ ${st[0]} -ne 0 || ${st[1]} -ne 0 ]]; then
    restorable_die "copying the recovered cluster into volume $vol failed: $(restorable_last_line "$err.tar") $(restorable_last_line "$err")${PITR_VOL_ASIDE:+ (its previous content is in volume $PITR_VOL_ASIDE)}"
  fi
}

# A recovery container (PITR_IMAGE) left by a failed or interrupted restore or drill: removed on
# exit with the other throwaways (lib.sh runs the registered cleanups).
restorable__pitr_exit() { if [[ -n $PITR_IMAGE && -n $PITR_CNAME ]]; then restorable_pitr_stop; fi; }
restorable_on_exit restorable__pitr_exit
