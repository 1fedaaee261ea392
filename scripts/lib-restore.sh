# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are read by the scripts that source this file
# shellcheck disable=SC2153 # RESTORABLE_* settings come from restorable.conf (lib.sh's restorable_load_config)
# lib-restore.sh — what is specific to `restore` and `restore-drill` (sourced after lib.sh, never
# executed). The run control they share with the backup jobs is lib.sh's: the handlers
# (restorable_traps: children, cleanups, the one failure line, pings, exit status), the config
# (restorable_load_config) and credentials (restorable_load_credentials optional), logging
# (restorable_log, restorable_say), the failure line (restorable_fail), pings (restorable_ping), the
# clock (restorable_realtime, _elapsed, _now, _iso, _stamp), the lock (restorable_lock NAME
# [optional]), interruptible children (restorable_run, restorable_kill_tree).
# Here:
#   failing     restorable_stage, restorable_die (exit 1), restorable_usage (exit 2),
#               restorable_config_error (exit 2): all through restorable_fail
#   teardown    restorable__restore_teardown, registered with lib.sh's EXIT handler
#               (restorable_on_exit): background downloads, throwaway volumes, the throwaway
#               Postgres (stopped in the background while the script's restorable_on_finish writes
#               the drill report); the temp dir is the run's RESTORABLE_RUN_ROOT, removed last
#   bucket      restorable_list_bucket, restorable_restore_points (restore points = manifests, found
#               by listing <host>/), restorable_fetch_* (download -> sha256 verify -> age decrypt ->
#               zstd decompress)
#   targets     restorable_target_* (compose service, container, local server, URL), restorable_tgt_run
#   throwaway   restorable_throwaway_start / _ready / _down (runtime docker | local), restorable_vol_*
#   promise     restorable_promise_periods / _audit (the retention audit)
#
# Exit codes (the same in all scripts): 0 success; 1 failure (the one-line reason says the stage;
# a signal too: "interrupted by SIGTERM"); 2 usage or configuration error; 3 another run holds the lock.
#
# Secrets: AWS keys and database passwords reach child processes through the environment only
# (AWS_*, PGPASSWORD); never argv, never a log line. The age identity is a file path.

# ---- basics -----------------------------------------------------------------------------------

umask 077
export LC_ALL=C
# aws: no instance-metadata probing (slow and pointless off-cloud), bounded retries.
export AWS_EC2_METADATA_DISABLED=true
export AWS_RETRY_MODE="${AWS_RETRY_MODE:-standard}"
export AWS_MAX_ATTEMPTS="${AWS_MAX_ATTEMPTS:-5}"
export AWS_PAGER=""

RESTORABLE_SCRIPT="${RESTORABLE_SCRIPT:-restore}"
RESTORABLE_STAGE="start"
RESTORABLE_TMP=""
# Throwaway Postgres state (restore-drill)
RESTORABLE_TA_KIND=""      # docker | local
RESTORABLE_TA_CID=""
RESTORABLE_TA_DIR=""
RESTORABLE_TA_BIN=""
RESTORABLE_RUN_ID=""

# (The clock, restorable_realtime / _elapsed / _now / _iso / _stamp / _stamp_epoch, is lib.sh's.)
# restorable_parse_date TEXT -> epoch seconds. Accepts a stamp (20261124T030000Z), ISO-8601
# (2026-11-24T03:00:00Z, 2026-11-24 03:00) or a bare date (2026-11-24 = the end of that UTC day).
restorable_parse_date() {
  local t=$1
  if [[ $t =~ ^[0-9]{8}T[0-9]{6}Z$ ]]; then
    restorable_stamp_epoch "$t"
  elif [[ $t =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
    date -u -d "$t 23:59:59" +%s
  else
    date -u -d "$t" +%s
  fi
}
# 93784 -> 1d2h3m (coarse: two largest units)
restorable_human_age() {
  local s=$1 d h m
  ((s < 0)) && s=0
  d=$((s / 86400)) h=$((s % 86400 / 3600)) m=$((s % 3600 / 60))
  if ((d > 0)); then printf '%dd%dh\n' "$d" "$h"
  elif ((h > 0)); then printf '%dh%dm\n' "$h" "$m"
  elif ((m > 0)); then printf '%dm%ds\n' "$m" "$((s % 60))"
  else printf '%ds\n' "$s"
  fi
}
restorable_human_size() {
  awk -v b="$1" 'BEGIN {
    if (b == "" || b == "?") { print "?"; exit }
    split("B KiB MiB GiB TiB", u, " "); i = 1
    while (b >= 1024 && i < 5) { b /= 1024; i++ }
    if (i == 1) printf "%d %s\n", b, u[i]; else printf "%.1f %s\n", b, u[i]
  }'
}

# ---- logging (restorable_log / restorable_say: lib.sh) ------------------------------------------

# Append a file's last lines to the log (indented), e.g. a tool's stderr.
restorable_log_file_tail() {
  local f=$1 n=${2:-20} l
  [[ -s $f ]] || return 0
  while IFS= read -r l; do restorable_log "  | $l"; done < <(tail -n "$n" "$f")
}
# The first line that says ERROR/FATAL/error (psql, pg_restore), else the last non-empty line.
restorable_error_line() {
  local l
  if [[ -s $1 ]] && l=$(grep -m1 -E 'ERROR|FATAL|error:' "$1"); then printf '%s\n' "${l:0:300}"; else restorable_last_line "$1"; fi
}
# The last non-empty line of a file, for one-line reasons.
restorable_last_line() {
  if [[ -s $1 ]]; then grep -v '^[[:space:]]*$' "$1" | tail -n 1 | cut -c1-300 || true; fi
}

# ---- stages and failure -----------------------------------------------------------------------

# A child doing the work of a stage (restore-drill's per-database child) also writes it to
# RESTORABLE_STAGE_FILE, so the parent names the right stage when it is interrupted.
RESTORABLE_STAGE_FILE=""
restorable_stage() {
  RESTORABLE_STAGE=$1
  if [[ -n $RESTORABLE_STAGE_FILE ]]; then printf '%s\n' "$1" >"$RESTORABLE_STAGE_FILE" 2>/dev/null || true; fi
}
# Failing goes through lib.sh's restorable_fail (recorded; the EXIT trap prints the line):
# restorable_die REASON: fail the run at the current stage (exit 1).
restorable_die() { restorable_fail "$RESTORABLE_STAGE" "$*" 1; }
# restorable_usage REASON: a usage error (exit 2): FAILED at stage usage: REASON (see <script> --help)
restorable_usage() { restorable_fail usage "$* (see $RESTORABLE_SCRIPT --help)" 2; }

# ---- config (restorable_load_config, restorable_load_credentials optional: lib.sh) -------------

restorable_config_error() { restorable_fail config "$*" 2; }

# The EXIT handler's part for restore and drill (lib.sh, restorable_on_exit): downloads, throwaway
# volumes, then the throwaway Postgres in the background (the handler waits for it after the
# script's restorable_on_finish, e.g. the drill's report, so both overlap).
restorable__restore_teardown() {
  restorable_bg_stop_all
  restorable_vol_down
  if [[ -n $RESTORABLE_TA_KIND ]]; then
    restorable_throwaway_down &
    RESTORABLE_TEARDOWN_PIDS+=("$!")
  fi
}
restorable_on_exit restorable__restore_teardown

# (restorable_lock NAME [optional]: lib.sh's.)

# restorable_tmp_init: private temp dir for this run (removed on exit, also on failure or a signal), with
# the run log and the AWS CLI's own config (nothing from ~/.aws; path-style addressing for generic
# S3-compatible stores, as rendered in RESTORABLE_S3_ADDRESSING_STYLE).
restorable_tmp_init() {
  RESTORABLE_TMP=$(mktemp -d "${TMPDIR:-/tmp}/restorable-$RESTORABLE_SCRIPT.XXXXXXXX") ||
    restorable_config_error "cannot create a temp dir under ${TMPDIR:-/tmp}"
  chmod 0711 "$RESTORABLE_TMP"
  mkdir -m 0700 "$RESTORABLE_TMP/work"
  # lib.sh's run dir: the run log (restorable_log, the fail ping's body) and the S3 helpers' scratch files.
  RESTORABLE_RUN_DIR="$RESTORABLE_TMP/work"
  # Removed last by the EXIT handler (downloads, the throwaway's files, the run log the fail ping carried).
  RESTORABLE_RUN_ROOT=$RESTORABLE_TMP
  : >"$RESTORABLE_RUN_DIR/log"
  printf '[default]\ns3 =\n  addressing_style = %s\n' "${RESTORABLE_S3_ADDRESSING_STYLE:-auto}" >"$RESTORABLE_TMP/work/aws.config"
  export AWS_CONFIG_FILE="$RESTORABLE_TMP/work/aws.config" AWS_SHARED_CREDENTIALS_FILE=/dev/null
  export AWS_DEFAULT_REGION=$RESTORABLE_REGION
}

# ---- bucket -----------------------------------------------------------------------------------

# restorable_list_bucket OUT: every object under <host>/ as JSON lines {key,size} into OUT.
restorable_list_bucket() {
  local out=$1 token="" query body=$RESTORABLE_TMP/work/list.xml err=$RESTORABLE_TMP/work/list.err tsv=$RESTORABLE_TMP/work/list.tsv
  : >"$tsv"
  while :; do
    query=""
    if [[ -n $token ]]; then query="continuation-token=$(restorable_urlencode "$token")&"; fi
    query+="list-type=2&prefix=$(restorable_urlencode "$RESTORABLE_PREFIX")"
    if ! restorable_run restorable_s3_request GET "" "$query" "$RESTORABLE_EMPTY_SHA256" "$body" 2>"$err"; then
      restorable_die "cannot list s3://$RESTORABLE_BUCKET/$RESTORABLE_PREFIX at $RESTORABLE_ENDPOINT: $(restorable_last_line "$err")"
    fi
    # <Contents><Key>K</Key>...<Size>N</Size>...</Contents> -> "K<TAB>N"
    sed 's/<Contents>/\n<Contents>/g' "$body" |
      sed -n 's/^<Contents>.*<Key>\([^<]*\)<\/Key>.*<Size>\([0-9]*\)<\/Size>.*$/\1\t\2/p' |
      sed 's/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&apos;/'"'"'/g; s/&amp;/\&/g' >>"$tsv" ||
      restorable_die "cannot parse the bucket listing"
    if ! grep -q '<IsTruncated>true</IsTruncated>' "$body"; then break; fi
    token=$(grep -o '<NextContinuationToken>[^<]*</NextContinuationToken>' "$body" | sed 's/<[^>]*>//g; s/&amp;/\&/g') || true
    [[ -n $token ]] || break
  done
  jq -R -c 'split("\t") | {key: .[0], size: (.[1] | tonumber)}' "$tsv" >"$out" || restorable_die "cannot parse the bucket listing"
}

# restorable_restore_points LISTING -> TSV lines, oldest first:
#   kind  name  tier  stamp  manifestKey  objectKey  size
# kind is postgres | globals | volume; name is the database / volume ("-" for globals).
# Only keys with a manifest count; objectKey/size come from the listing ("-"/"?" when absent; a
# volume's <stamp>.listing.* beside its tarball is not the object).
restorable_restore_points() {
  local listing=$1
  jq -r -s --arg host "$RESTORABLE_HOST" '
    (map(select(.key | (endswith(".manifest.json") or test("/[0-9]{8}T[0-9]{6}Z\\.listing\\.")) | not))) as $data
    | .[]
    | .key as $k | ($k | split("/")) as $p
    | select($p[0] == $host and (["daily","weekly","monthly"] | index($p[1])) != null)
    | select($p[-1] | test("^[0-9]{8}T[0-9]{6}Z\\.manifest\\.json$"))
    | (if $p[2] == "postgres" and ($p | length) == 5 then {kind: "postgres", name: $p[3]}
       elif $p[2] == "globals" and ($p | length) == 4 then {kind: "globals", name: "-"}
       elif $p[2] == "volumes" and ($p | length) == 5 then {kind: "volume", name: $p[3]}
       else empty end)
    | .tier = $p[1] | .stamp = ($p[-1] | .[0:16]) | .manifest = $k
    | (($p[0:-1] | join("/")) + "/" + .stamp + ".") as $base
    | ([$data[] | select(.key | startswith($base))] | first) as $obj
    | [.kind, .name, .tier, .stamp, .manifest, ($obj.key // "-"), (($obj.size // "?") | tostring)]
    | @tsv' "$listing" | sort -t $'\t' -k4,4 -k3,3
}

# restorable_pick POINTS KIND NAME [AT_EPOCH] -> the TSV line of the newest restore point (at or before AT).
restorable_pick() {
  local points=$1 kind=$2 name=$3 at=${4:-} at_stamp="99999999T999999Z"
  if [[ -n $at ]]; then at_stamp=$(restorable_stamp "$at"); fi
  awk -F '\t' -v k="$kind" -v n="$name" -v at="$at_stamp" '$1 == k && $2 == n && $4 <= at { line = $0 } END { if (line != "") print line }' "$points"
}

# Downloads. Manifests and objects up to RESTORABLE_CURL_MAX bytes: one signed curl request
# (restorable_s3_request from lib.sh: SigV4, the key on a -K stream, never in argv) — an AWS CLI
# start costs about half a second of CPU. Bigger objects: the AWS CLI (parallel ranged GETs, no
# time limit). Errors: one line in FILE.err; a failed download leaves no FILE.
RESTORABLE_CURL_MAX=$((64 * 1024 * 1024))
# restorable_s3_fetch KEY FILE [SIZE]
restorable_s3_fetch() {
  local key=$1 file=$2 size=${3:-0}
  if [[ $size =~ ^[0-9]+$ ]] && ((size <= RESTORABLE_CURL_MAX)); then
    restorable_s3_request GET "$key" "" "$RESTORABLE_EMPTY_SHA256" "$file" 2>"$file.err" && return 0
  else
    restorable_aws s3 cp --quiet --only-show-errors "$(restorable_s3_url "$key")" "$file" 2>"$file.err" && return 0
  fi
  rm -f -- "$file"
  return 1
}

# restorable_s3_get_stream KEY [SIZE]: the object KEY on stdout, by the same clients as
# restorable_s3_fetch. No retry inside: a retried transfer would repeat bytes on the stream (the
# caller's sha256 check would catch it, but fail).
restorable_s3_get_stream() {
  local key=$1 size=${2:-0}
  if [[ $size =~ ^[0-9]+$ ]] && ((size <= RESTORABLE_CURL_MAX)); then
    curl -sS -f --connect-timeout 15 -K <(restorable__curl_auth) --aws-sigv4 "aws:amz:$RESTORABLE_REGION:s3" \
      -H "x-amz-content-sha256: $RESTORABLE_EMPTY_SHA256" "$(restorable_s3_http_url "$key")"
  else
    restorable_aws s3 cp --quiet --only-show-errors "$(restorable_s3_url "$key")" -
  fi
}

# Background downloads overlap with each other, the target check and the throwaway's startup.
# RESTORABLE_BG maps a destination file to "pid:key".
declare -A RESTORABLE_BG=()
# restorable_bg_get KEY FILE [SIZE]: start downloading KEY to FILE in the background.
restorable_bg_get() {
  local key=$1 file=$2 size=${3:-0}
  # FILE.end: when it finished (download times are not stretched by a late collector).
  { if restorable_s3_fetch "$key" "$file" "$size"; then restorable_realtime >"$file.end"; else exit 1; fi; } </dev/null &
  RESTORABLE_BG[$file]="$!:$key"
}
# restorable_bg_wait FILE KEY: wait for the background download of KEY into FILE: 0 done, 1 failed (see
# FILE.err), 2 none started for KEY (a download of another key into FILE is stopped and removed).
restorable_bg_wait() {
  local file=$1 key=$2 ent=${RESTORABLE_BG[$1]:-} rc=0
  [[ -n $ent ]] || return 2
  unset 'RESTORABLE_BG[$file]'
  if [[ ${ent#*:} != "$key" ]]; then
    restorable_kill_tree "${ent%%:*}"
    wait "${ent%%:*}" 2>/dev/null || true
    rm -f -- "$file"
    return 2
  fi
  wait "${ent%%:*}" || rc=$?
  ((rc == 0)) || return 1
}
restorable_bg_stop_all() {
  local f pid st ppid
  for f in "${!RESTORABLE_BG[@]}"; do
    pid=${RESTORABLE_BG[$f]%%:*}
    # Only this shell's own downloads: a drill item's child inherits RESTORABLE_BG from the parent, whose
    # prefetch of the next restore point it must not kill when it ends.
    st=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    st=${st##*) }
    read -r _ ppid _ <<<"$st"
    if [[ $ppid == "$BASHPID" ]]; then restorable_kill_tree "$pid"; fi
  done
  RESTORABLE_BG=()
}
# restorable_get KEY FILE [SIZE]: download (or collect the background download of) KEY into FILE.
restorable_get() {
  local key=$1 file=$2 size=${3:-0} rc=0
  restorable_progress_start "download $key" "$size" size "$file"
  restorable_bg_wait "$file" "$key" || rc=$?
  if ((rc == 2)); then
    rc=0
    restorable_run restorable_s3_fetch "$key" "$file" "$size" || rc=1
  fi
  restorable_progress_stop
  return "$rc"
}

# restorable_prefetch_point MANIFEST_KEY OBJECT_KEY SIZE DIR: start downloading a restore point (the
# manifest and the object the listing shows beside it, "-" for none) into DIR/fetch in the
# background; restorable_prefetch_wait collects them (in the same shell). restorable_fetch_manifest and
# restorable_fetch_object pick the files up from there; the manifest still decides which object is used.
restorable_prefetch_point() {
  local mkey=$1 okey=$2 size=$3 dir=$4
  rm -rf -- "$dir/fetch"
  mkdir -m 0700 "$dir/fetch"
  printf '%s\n' "$(restorable_realtime)" >"$dir/fetch.start"
  printf '%s\n' "$size" >"$dir/fetch.size"
  restorable_bg_get "$mkey" "$dir/fetch/${mkey##*/}" 0
  if [[ $okey != - ]]; then restorable_bg_get "$okey" "$dir/fetch/${okey##*/}" "$size"; fi
}
# restorable_prefetch_wait MANIFEST_KEY OBJECT_KEY DIR: wait for both; writes DIR/fetch.seconds. A failed
# download leaves no file, so restorable_fetch_* try again and report the real error.
restorable_prefetch_wait() {
  local mkey=$1 okey=$2 dir=$3 f end=0
  if [[ $okey != - ]]; then restorable_progress_start "download $okey" "$(<"$dir/fetch.size")" size "$dir/fetch/${okey##*/}"; fi
  restorable_bg_wait "$dir/fetch/${mkey##*/}" "$mkey" || true
  if [[ $okey != - ]]; then restorable_bg_wait "$dir/fetch/${okey##*/}" "$okey" || true; fi
  restorable_progress_stop
  for f in "$dir"/fetch/*.end; do
    if [[ -f $f ]]; then end=$(awk -v a="$end" -v b="$(<"$f")" 'BEGIN { print (b > a ? b : a) }'); fi
  done
  awk -v a="$(<"$dir/fetch.start")" -v b="$end" 'BEGIN { printf "%.3f\n", (b > a ? b - a : 0) }' >"$dir/fetch.seconds"
}

# restorable_fetch_manifest MANIFEST_KEY KIND NAME DIR: download (or take the prefetched) manifest and
# check it -> RESTORABLE_MF, and the fields restore and drill use, read once: RESTORABLE_MF_KEY, RESTORABLE_MF_SHA256 (as
# written), RESTORABLE_MF_SIZE, RESTORABLE_MF_CREATED ("" when absent), RESTORABLE_MF_ENC, RESTORABLE_MF_COMP ("none" when absent).
restorable_fetch_manifest() {
  local mkey=$1 kind=$2 name=$3 dir=$4
  RESTORABLE_MF="$dir/manifest.json"
  restorable_stage download
  if [[ -s $dir/fetch/${mkey##*/} ]]; then
    mv -f -- "$dir/fetch/${mkey##*/}" "$RESTORABLE_MF"
  else
    restorable_get "$mkey" "$RESTORABLE_MF" 0 || restorable_die "cannot download manifest s3://$RESTORABLE_BUCKET/$mkey: $(restorable_last_line "$RESTORABLE_MF.err")"
  fi
  restorable_check_manifest "$RESTORABLE_MF" "$mkey" "$kind" "$name"
}

# restorable_fetch_object DIR IDENTITY: download (or take the prefetched) object RESTORABLE_MF names (after
# restorable_fetch_manifest) into DIR,
# verify its sha256 and size against the manifest, then check that it decrypts (age, with the
# identity file) and decompresses (zstd) by decoding its first bytes. Sets RESTORABLE_OBJ (the verified
# object as stored), RESTORABLE_ENC, RESTORABLE_COMP, RESTORABLE_IDENTITY, RESTORABLE_HEAD (first decoded bytes, as text) and
# RESTORABLE_T_DOWNLOAD / RESTORABLE_T_VERIFY (seconds). Nothing outside DIR is touched, so a failure here has no
# side effects. Decode the whole object with restorable_decode (stream) or restorable_decode_to FILE.
restorable_fetch_object() {
  local dir=$1 identity=${2:-} t0 err=$1/fetch.err
  local okey sha size
  okey=$RESTORABLE_MF_KEY sha=${RESTORABLE_MF_SHA256,,} size=$RESTORABLE_MF_SIZE RESTORABLE_ENC=$RESTORABLE_MF_ENC RESTORABLE_COMP=$RESTORABLE_MF_COMP
  RESTORABLE_OBJ="$dir/object"
  RESTORABLE_IDENTITY=$identity
  restorable_stage download
  if [[ -f $dir/fetch/${okey##*/} && -s $dir/fetch.seconds ]]; then
    mv -f -- "$dir/fetch/${okey##*/}" "$RESTORABLE_OBJ"
    RESTORABLE_T_DOWNLOAD=$(<"$dir/fetch.seconds")
  else
    t0=${RESTORABLE_T_DOWNLOAD_START:-$(restorable_realtime)}
    restorable_get "$okey" "$RESTORABLE_OBJ" "${size:-}" || restorable_die "cannot download s3://$RESTORABLE_BUCKET/$okey: $(restorable_last_line "$RESTORABLE_OBJ.err")"
    RESTORABLE_T_DOWNLOAD=$(restorable_elapsed "$t0")
  fi
  rm -rf -- "$dir/fetch"

  restorable_stage verify
  t0=$(restorable_realtime)
  local actual actual_size
  actual_size=$(stat -c %s "$RESTORABLE_OBJ")
  restorable_progress_start "verify $okey" "$actual_size" read "$RESTORABLE_OBJ"
  actual=$(sha256sum "$RESTORABLE_OBJ" | cut -d ' ' -f 1) || actual=
  restorable_progress_stop
  [[ -n $actual ]] || restorable_die "sha256sum failed on the downloaded object"
  if [[ $actual != "$sha" ]]; then
    restorable_die "sha256 mismatch for s3://$RESTORABLE_BUCKET/$okey: the manifest says $sha, the downloaded object ($actual_size bytes) has $actual; it changed or was corrupted after upload, not restoring it"
  fi
  if [[ -n $size && $size != "$actual_size" ]]; then
    restorable_die "size mismatch for s3://$RESTORABLE_BUCKET/$okey: the manifest says $size bytes, downloaded $actual_size"
  fi
  RESTORABLE_T_VERIFY=$(restorable_elapsed "$t0")
  restorable_log "verified sha256 of $okey ($actual_size bytes)"

  restorable__decodable "$okey" "$identity"
  if [[ $RESTORABLE_ENC == age ]]; then
    restorable_stage decrypt
    # The header names the recipients: a wrong identity fails here, before anything is decoded.
    if ! age -d -i "$identity" "$RESTORABLE_OBJ" 2>"$err" | head -c 1 >/dev/null; then
      if [[ -s $err ]]; then
        restorable_log_file_tail "$err" 5
        restorable_die "age could not decrypt $okey with identity $identity: $(restorable_last_line "$err")"
      fi
    fi
  fi
  restorable_stage decompress
  RESTORABLE_HEAD=$(restorable_decode 2>"$err" | head -c 512 | tr -d '\0' || true)
  if [[ -z $RESTORABLE_HEAD ]]; then
    restorable_die "cannot decode $okey ($RESTORABLE_ENC, $RESTORABLE_COMP): $(restorable_last_line "$err")"
  fi
}

# restorable_rto_check WHAT SECONDS [PARTS]: dies (at the current stage) when SECONDS, a restore's
# measured time, exceed the RTO objective: "WHAT took SECONDS s (PARTS), more than the RTO objective of 1h".
restorable_rto_check() {
  if awk -v a="$2" -v t="$RESTORABLE_RTO_SECONDS" 'BEGIN { exit !(a > t) }'; then
    restorable_die "$1 took $2 s${3:+ ($3)}, more than the RTO objective of $(restorable_human_age "$RESTORABLE_RTO_SECONDS")"
  fi
}

# restorable__decodable KEY IDENTITY: dies unless the manifest's encryption and compression
# (RESTORABLE_ENC, RESTORABLE_COMP) are known and, for age, the identity file is there and readable.
restorable__decodable() {
  local okey=$1 identity=$2
  case $RESTORABLE_ENC in
    none) ;;
    age)
      restorable_stage decrypt
      [[ -n $identity ]] || restorable_die "$okey is encrypted with age: give the identity file with --identity FILE (or RESTORABLE_AGE_IDENTITY)"
      [[ -r $identity ]] || restorable_die "cannot read the age identity file $identity"
      command -v age >/dev/null || restorable_die "$okey is encrypted with age, but age is not installed"
      ;;
    *) restorable_stage decrypt; restorable_die "unknown encryption \"$RESTORABLE_ENC\" in the manifest of $okey" ;;
  esac
  case $RESTORABLE_COMP in
    zstd | none) ;;
    *) restorable_stage decompress; restorable_die "unknown compression \"$RESTORABLE_COMP\" in the manifest of $okey" ;;
  esac
}

# restorable_stream_object DIR IDENTITY CMD...: the object RESTORABLE_MF names (after
# restorable_fetch_manifest) downloaded, decrypted and decompressed straight into CMD, with no copy
# on disk and the download overlapping the decode; its sha256 and size are taken on the way and
# checked against the manifest once the stream has ended. CMD sees the bytes BEFORE that check:
# use it only for a destination this job throws away when it dies (a recovery's fresh data
# directory), never for a user's database (restorable_fetch_object verifies first). Dies naming the
# stage: download, decrypt/decompress or CMD (stage decompress), verify (a mismatch). Sets
# RESTORABLE_T_DOWNLOAD (the whole stream, seconds) and RESTORABLE_T_VERIFY (0: on the way).
restorable_stream_object() {
  local dir=$1 identity=${2:-} t0
  shift 2
  local okey=$RESTORABLE_MF_KEY sha=${RESTORABLE_MF_SHA256,,} size=$RESTORABLE_MF_SIZE
  RESTORABLE_ENC=$RESTORABLE_MF_ENC RESTORABLE_COMP=$RESTORABLE_MF_COMP RESTORABLE_IDENTITY=$identity
  restorable__decodable "$okey" "$identity"
  local d="$dir/stream"
  rm -rf -- "$d"
  mkdir -m 0700 -- "$d"
  restorable_hash_start "$d"
  restorable_stage download
  t0=$(restorable_realtime)
  restorable_progress_start "restore $okey" "$size" rchar "$RESTORABLE_HASH_SIZE_PID" "$d/size"
  restorable_run restorable__stream_object_pipe "$d" "$okey" "$size" "$@" || true
  restorable_progress_stop
  local st=() hashed=0
  read -r -a st <"$d/status" 2>/dev/null || st=(1 1 1 1)
  restorable_hash_finish "$d" || hashed=1
  RESTORABLE_T_DOWNLOAD=$(restorable_elapsed "$t0") RESTORABLE_T_VERIFY=0
  # Which failure is the cause: a download that failed on its own (not of a broken pipe: curl 23,
  # SIGPIPE 141) comes first; a complete download is then checked against the manifest (a changed
  # object explains everything after it); then the decode (unless it only lost its reader), then
  # CMD, then the hashing tee.
  local get=${st[0]:-1} tee=${st[1]:-1} dec=${st[2]:-1} cmd=${st[3]:-1}
  if ((get != 0 && get != 23 && get != 141)); then
    restorable_die "cannot download s3://$RESTORABLE_BUCKET/$okey: $(restorable_last_line "$d/err.get")"
  fi
  local actual=$RESTORABLE_HASH_SHA256 actual_size=$RESTORABLE_HASH_SIZE
  if ((get == 0)); then
    restorable_stage verify
    if ((hashed == 0)); then
      if [[ $actual != "$sha" ]]; then
        restorable_die "sha256 mismatch for s3://$RESTORABLE_BUCKET/$okey: the manifest says $sha, the downloaded object ($actual_size bytes) has $actual; it changed or was corrupted after upload, not using it"
      fi
      if [[ -n $size && $size != "$actual_size" ]]; then
        restorable_die "size mismatch for s3://$RESTORABLE_BUCKET/$okey: the manifest says $size bytes, downloaded $actual_size"
      fi
    elif ((tee == 0)); then
      restorable_die "could not hash the downloaded stream of $okey: $(restorable_last_line "$d/err.sha")"
    fi
  fi
  if ((dec != 0 && dec != 141)) && ! grep -qi 'broken pipe' "$d/err.decode" 2>/dev/null; then
    restorable_stage decompress
    restorable_die "cannot decrypt/decompress $okey ($RESTORABLE_ENC, $RESTORABLE_COMP): $(restorable_last_line "$d/err.decode")"
  fi
  if ((cmd != 0)); then
    restorable_stage decompress
    restorable_die "$1 failed on $okey: $(restorable_error_line "$d/err.cmd")"
  fi
  if ((get != 0 || tee != 0 || dec != 0)); then
    restorable_die "streaming $okey failed (download $get, hash $tee, decode $dec): $(restorable_last_line "$d/err.get") $(restorable_last_line "$d/err.tee") $(restorable_last_line "$d/err.decode")"
  fi
  restorable_log "verified sha256 of $okey ($actual_size bytes, on the way)"
  rm -rf -- "$d"
}
restorable__stream_object_pipe() {
  local d=$1 okey=$2 size=$3
  shift 3
  set +e
  restorable_s3_get_stream "$okey" "$size" 2>"$d/err.get" |
    tee "$d/sha.fifo" "$d/size.fifo" 2>"$d/err.tee" |
    RESTORABLE_OBJ=/dev/stdin restorable_decode 2>"$d/err.decode" |
    "$@" 2>"$d/err.cmd"
  printf '%s\n' "${PIPESTATUS[*]}" >"$d/status"
}

# restorable_decode: the object RESTORABLE_OBJ decrypted and decompressed, on stdout (a stream: no copy on disk).
# Exit status: the first failing stage's (pipefail).
restorable_decode() {
  restorable_wide_pipe
  case $RESTORABLE_ENC:$RESTORABLE_COMP in
    none:none) cat -- "$RESTORABLE_OBJ" ;;
    none:zstd) zstd -q -d -c -- "$RESTORABLE_OBJ" ;;
    age:none) age -d -i "$RESTORABLE_IDENTITY" "$RESTORABLE_OBJ" ;;
    age:zstd) age -d -i "$RESTORABLE_IDENTITY" "$RESTORABLE_OBJ" | zstd -q -d -c ;;
  esac
}
# restorable_decode_into DIR CMD...: restorable_decode | CMD with both exit statuses checked; stderr to
# DIR/decode.err and DIR/restore.err, statuses to DIR/pipe.status ("DECODE CMD"). Returns 1 when
# either failed. The decoded stream never touches the disk.
restorable_decode_into() {
  local dir=$1 st
  shift
  restorable_progress_start "restore $RESTORABLE_MF_KEY" "$(stat -c %s -- "$RESTORABLE_OBJ" 2>/dev/null)" read "$RESTORABLE_OBJ"
  set +e
  restorable_decode 2>"$dir/decode.err" | "$@" 2>"$dir/restore.err"
  st=("${PIPESTATUS[@]}")
  set -e
  restorable_progress_stop
  printf '%s %s\n' "${st[0]}" "${st[1]}" >"$dir/pipe.status"
  [[ ${st[0]} -eq 0 && ${st[1]} -eq 0 ]]
}
# restorable_decode_into_reason DIR WHAT: one line saying which side of restorable_decode_into failed and why.
restorable_decode_into_reason() {
  local dir=$1 what=$2 d r
  read -r d r <"$dir/pipe.status" || true
  if [[ ${r:-1} -ne 0 ]]; then
    printf '%s failed: %s\n' "$what" "$(restorable_error_line "$dir/restore.err")"
  else
    printf 'decrypting/decompressing the object failed (status %s): %s\n' "$d" "$(restorable_last_line "$dir/decode.err")"
  fi
}
# restorable_decode_to FILE: decode the whole object into FILE (and drop the stored object).
restorable_decode_to() {
  local out=$1 t0
  restorable_stage decompress
  t0=$(restorable_realtime)
  restorable_progress_start "decode $RESTORABLE_MF_KEY" "$(stat -c %s -- "$RESTORABLE_OBJ" 2>/dev/null)" read "$RESTORABLE_OBJ"
  restorable_run restorable_decode >"$out" 2>"$out.err" || { restorable_progress_stop; restorable_die "cannot decrypt/decompress the object: $(restorable_last_line "$out.err")"; }
  restorable_progress_stop
  rm -f -- "$RESTORABLE_OBJ"
  RESTORABLE_T_DECODE=$(restorable_elapsed "$t0")
}

# restorable_globals_sql IN OUT [drill]: pg_dumpall --globals-only output (IN) -> SQL (OUT) that applies to
# a server that already has some of the roles: CREATE ROLE fails for a role that exists (the
# superuser always does), so it is made idempotent. With "drill", CREATE TABLESPACE statements are
# left out (a throwaway has none of their directories; the drill restores with --no-tablespaces).
# Sets RESTORABLE_GLOBALS_ROLES (roles in the backup). Dies at the current stage on a non-globals object.
RESTORABLE_GLOBALS_ROLES=0
restorable_globals_sql() {
  local in=$1 out=$2 drill=${3:-}
  grep -q '^CREATE ROLE\|^ALTER ROLE\|^--' "$in" || restorable_die "the object does not look like pg_dumpall --globals-only output"
  local -a skip=()
  if [[ $drill == drill ]]; then skip=(-e '/^CREATE TABLESPACE /d'); fi
  # shellcheck disable=SC2016 # $restorable$ is SQL dollar quoting
  sed -E "${skip[@]}" -e 's/^CREATE ROLE (.+);$/DO $restorable$ BEGIN CREATE ROLE \1; EXCEPTION WHEN duplicate_object THEN NULL; END $restorable$;/' \
    "$in" >"$out" || restorable_die "cannot prepare the globals SQL"
  RESTORABLE_GLOBALS_ROLES=$(grep -c '^CREATE ROLE' "$in" || true)
}

# restorable_check_manifest FILE KEY KIND NAME: the manifest is well-formed and describes what we
# asked for; sets the RESTORABLE_MF_* fields (restorable_fetch_manifest). One jq for both (a jq
# start is a noticeable share of a restore's preamble).
restorable_check_manifest() {
  local f=$1 key=$2 kind=$3 name=$4 dir out problem
  dir=${key%/*}
  # One JSON document, then the first problem ("" when none) and the fields, \x1f apart.
  out=$(jq -r -s --arg kind "$kind" --arg name "$name" --arg host "$RESTORABLE_HOST" --arg dir "$dir/" '
    if length != 1 then "not one JSON document" else .[0] |
    (if .format != 1 then "unsupported manifest format \(.format)"
    elif .kind != $kind then "kind is \(.kind), expected \($kind)"
    elif .host != $host then "host is \(.host), expected \($host)"
    elif ($kind == "postgres" and .database != $name) then "database is \(.database), expected \($name)"
    elif ($kind == "volume" and .volume != $name) then "volume is \(.volume), expected \($name)"
    elif (.object.key | type) != "string" or (.object.key | startswith($dir) | not) then "object.key \(.object.key) is not beside the manifest"
    elif (.object.sha256 | type) != "string" or (.object.sha256 | test("^[0-9a-fA-F]{64}$") | not) then "object.sha256 is missing or malformed"
    else "" end) as $problem
    | [$problem, .object.key, .object.sha256, (.object.size // ""), (.createdAt // ""), (.encryption // "none"), (.compression // "none")]
    | map(tostring) | join("\u001f") end' "$f" 2>/dev/null) || restorable_die "manifest $key is not valid JSON"
  [[ $out == *$'\x1f'* ]] || restorable_die "manifest $key is not valid JSON"
  IFS=$'\x1f' read -r problem RESTORABLE_MF_KEY RESTORABLE_MF_SHA256 RESTORABLE_MF_SIZE RESTORABLE_MF_CREATED RESTORABLE_MF_ENC RESTORABLE_MF_COMP <<<"$out"
  [[ -z $problem ]] || restorable_die "manifest $key: $problem"
}

# ---- database targets -------------------------------------------------------------------------
#
# A target is where pg client tools run: "exec" (docker exec into a container: the compose
# service's or a named one, client tools of the container), "native" (host binaries over TCP or a
# socket dir), or "url" (a libpq URL without password). restorable_tgt_run TOOL DB ARGS... runs
# psql/pg_restore against database DB of the target, stdin passed through.

RESTORABLE_MF_KEY="" RESTORABLE_MF_SHA256="" RESTORABLE_MF_SIZE="" RESTORABLE_MF_CREATED="" RESTORABLE_MF_ENC=none RESTORABLE_MF_COMP=none
RESTORABLE_OBJ="" RESTORABLE_ENC=none RESTORABLE_COMP=none RESTORABLE_IDENTITY="" RESTORABLE_HEAD="" RESTORABLE_T_DOWNLOAD=0 RESTORABLE_T_VERIFY=0 RESTORABLE_T_DECODE=0
RESTORABLE_T_KIND="" RESTORABLE_T_CID="" RESTORABLE_T_SOCK="" RESTORABLE_T_HOST="" RESTORABLE_T_PORT="" RESTORABLE_T_USER="" RESTORABLE_T_URL="" RESTORABLE_T_BIN="" RESTORABLE_T_DESC=""

# restorable_target_compose PROJECT_DIR SERVICE USER: resolve the service's running container.
restorable_target_compose() {
  local project=$1 service=$2 user=$3 ids err=$RESTORABLE_TMP/work/compose.err
  ids=$(restorable_compose_container "$project" "$service" 2>"$err") || restorable_die "compose service $service in $project: $(restorable_last_line "$err")"
  RESTORABLE_T_KIND=exec RESTORABLE_T_CID=$ids RESTORABLE_T_USER=$user RESTORABLE_T_SOCK="" RESTORABLE_T_PORT=""
  RESTORABLE_T_DESC="compose service $service in $project (container ${ids:0:12}) as $user"
}
restorable_target_container() {
  local name=$1 user=$2
  docker inspect --format '{{.State.Running}}' "$name" 2>/dev/null | grep -qx true || restorable_die "container $name is not running"
  RESTORABLE_T_KIND=exec RESTORABLE_T_CID=$name RESTORABLE_T_USER=$user RESTORABLE_T_SOCK="" RESTORABLE_T_PORT=""
  RESTORABLE_T_DESC="container $name as $user"
}
restorable_target_local() {
  local host=$1 port=$2 user=$3
  RESTORABLE_T_KIND=native RESTORABLE_T_HOST=$host RESTORABLE_T_PORT=$port RESTORABLE_T_USER=$user RESTORABLE_T_BIN=""
  RESTORABLE_T_DESC="local server $host:$port as $user"
}
restorable_target_url() {
  local url=$1 user=$2
  RESTORABLE_T_KIND=url RESTORABLE_T_URL=${url%/} RESTORABLE_T_USER=$user
  RESTORABLE_T_DESC="server ${url%/}${user:+ as $user}"
}

restorable_tgt_run() {
  local tool=$1 db=$2
  shift 2
  case $RESTORABLE_T_KIND in
    exec)
      local envs=() sock=()
      if [[ -n ${PGPASSWORD:-} ]]; then envs=(-e PGPASSWORD); fi
      # A socket dir inside the container; with a port when the server is not on 5432 there.
      if [[ -n $RESTORABLE_T_SOCK ]]; then sock=(-h "$RESTORABLE_T_SOCK" ${RESTORABLE_T_PORT:+-p "$RESTORABLE_T_PORT"}); fi
      docker exec -i "${envs[@]}" "$RESTORABLE_T_CID" "$tool" "${sock[@]}" -U "$RESTORABLE_T_USER" -d "$db" "$@"
      ;;
    native) "$RESTORABLE_T_BIN$tool" -h "$RESTORABLE_T_HOST" -p "$RESTORABLE_T_PORT" -U "$RESTORABLE_T_USER" -d "$db" "$@" ;;
    url)
      local u=()
      if [[ -n $RESTORABLE_T_USER ]]; then u=(-U "$RESTORABLE_T_USER"); fi
      "$tool" -d "$RESTORABLE_T_URL/$db" "${u[@]}" "$@"
      ;;
    *) return 2 ;;
  esac
}
# restorable_sql DB SQL: run SQL (from stdin of psql, never argv) and print the unaligned result.
restorable_sql() {
  local db=$1 sql=$2
  printf '%s\n' "$sql" | restorable_tgt_run psql "$db" -XAtq -v ON_ERROR_STOP=1 -f -
}

# The table list of a database as sorted "schema.table" lines: ordinary and partitioned tables
# outside the system schemas (the same set the backup writes into the manifest).
RESTORABLE_TABLES_SQL="SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1"
# Objects that make a database "non-empty" for restore: any relation, type-less function or
# schema outside the system schemas and the default empty public schema.
RESTORABLE_NONEMPTY_SQL="SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%') + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) + (SELECT count(*) FROM pg_namespace n WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND n.nspname NOT LIKE 'pg\\_%')"

# Expected tables from a manifest, sorted "schema.table" lines.
restorable_manifest_tables() { jq -r '(.tables // [])[] | "\(.schema).\(.name)"' "$1" | sort; }

# restorable_compare_tables EXPECTED_FILE ACTUAL_FILE -> prints a reason and returns 1 when they differ.
restorable_compare_tables() {
  local missing unexpected
  missing=$(comm -23 "$1" "$2" | paste -sd, - | sed 's/,/, /g')
  unexpected=$(comm -13 "$1" "$2" | paste -sd, - | sed 's/,/, /g')
  if [[ -z $missing && -z $unexpected ]]; then return 0; fi
  local r=""
  [[ -n $missing ]] && r="missing relative to the manifest: $missing"
  [[ -n $unexpected ]] && r="${r:+$r; }not in the manifest: $unexpected"
  printf '%s\n' "$r"
  return 1
}

# ---- names --------------------------------------------------------------------------------------
#
# The config schema's name rules (infra/config/schema.ts NAME_RULES; test/unit/name-rules.test.ts
# keeps these equal to it), so that every name `backup` backs up is one restore and drill accept.
# The patterns live in variables: written inline in [[ =~ ]], bash would expand the "$-" in them.
RESTORABLE_PG_NAME_RE='^[A-Za-z_][A-Za-z0-9_$-]{0,62}$'
RESTORABLE_PG_NAME_RULE='must start with a letter or _ and contain only letters, digits, _, $ and - (at most 63 characters)'
RESTORABLE_DOCKER_NAME_RE='^[A-Za-z0-9][A-Za-z0-9_.-]+$'
RESTORABLE_DOCKER_NAME_RULE='must start with a letter or digit and contain only letters, digits, _, . and - (at least 2 characters)'
# restorable_check_name pg|docker WHAT VALUE: a usage error (exit 2) naming the rule VALUE breaks.
restorable_check_name() {
  local rule=$1 what=$2 value=$3 re text
  case $rule in
    pg) re=$RESTORABLE_PG_NAME_RE text=$RESTORABLE_PG_NAME_RULE ;;
    docker) re=$RESTORABLE_DOCKER_NAME_RE text=$RESTORABLE_DOCKER_NAME_RULE ;;
  esac
  [[ $value =~ $re ]] || restorable_usage "$what \"$value\": $text"
}
# SQL quoting: restorable_sql_ident NAME -> "NAME" (identifier), restorable_sql_literal TEXT -> 'TEXT' (string
# literal; standard_conforming_strings is on in every supported PostgreSQL). Names are also checked
# against the rules above, but SQL never relies on that.
restorable_sql_ident() { local s=${1//\"/\"\"}; printf '"%s"' "$s"; }
restorable_sql_literal() { local s=${1//\'/\'\'}; printf "'%s'" "$s"; }

# ---- the retention promise -------------------------------------------------------------------
#
# The README's promise: a restore point from each of the last DAILY UTC days, WEEKLY ISO weeks and
# MONTHLY months, counted at a moment as the periods that end with yesterday. The same definition
# as the plan's promisePeriods (infra/plan/promise.ts); test/unit/promise.test.ts keeps them equal.

# restorable_promise_periods NOW_EPOCH DAILY WEEKLY MONTHLY: one line per period,
#   TIER <TAB> LABEL <TAB> FROM <TAB> TO      (FROM/TO: UTC stamps, [FROM, TO), as in object keys)
restorable_promise_periods() {
  local now=$1 nd=$2 nw=$3 nm=$4 y k from to monday yy mm dow
  y=$((now / 86400 * 86400 - 86400))
  for ((k = 0; k < nd; k++)); do
    from=$((y - k * 86400))
    printf 'daily\t%(%F)T\t%(%Y%m%dT%H%M%SZ)T\t%(%Y%m%dT%H%M%SZ)T\n' "$from" "$from" $((from + 86400))
  done
  printf -v dow '%(%u)T' "$y"
  monday=$((y - (dow - 1) * 86400))
  for ((k = 0; k < nw; k++)); do
    from=$((monday - 7 * k * 86400))
    printf 'weekly\tweek of %(%F)T\t%(%Y%m%dT%H%M%SZ)T\t%(%Y%m%dT%H%M%SZ)T\n' "$from" "$from" $((from + 7 * 86400))
  done
  printf -v yy '%(%Y)T' "$y"
  printf -v mm '%(%m)T' "$y"
  mm=$((10#$mm))
  for ((k = 0; k < nm; k++)); do
    from=$(restorable_month_start "$yy" $((mm - k)))
    to=$(restorable_month_start "$yy" $((mm - k + 1)))
    printf 'monthly\t%(%Y-%m)T\t%(%Y%m%dT%H%M%SZ)T\t%(%Y%m%dT%H%M%SZ)T\n' "$from" "$from" "$to"
  done
}
# restorable_month_start YEAR MONTH: epoch seconds of the 1st of MONTH (any integer: 0 = December of the
# year before, 13 = January after) at 00:00 UTC, by the civil-calendar day count (no date(1) fork).
restorable_month_start() {
  local y=$1 m=$2 era yoe doy doe
  y=$((y + (m - 1 - ((m - 1) % 12 + 12) % 12) / 12)) m=$((((m - 1) % 12 + 12) % 12 + 1))
  ((m <= 2)) && y=$((y - 1))
  era=$(((y >= 0 ? y : y - 399) / 400))
  yoe=$((y - era * 400))
  doy=$(((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5))
  doe=$((yoe * 365 + yoe / 4 - yoe / 100 + doy))
  printf '%s\n' $(((era * 146097 + doe - 719468) * 86400))
}

# restorable_promise_audit PERIODS POINTS KIND NAME: the item's promised periods without a restore point
# (POINTS: restorable_restore_points lines). Prints "covered <N>", "pending <N>" (periods that ended before
# the item's oldest restore point) and one "missing <TIER> <LABEL>" line per gap, tab-separated.
restorable_promise_audit() {
  awk -F '\t' -v k="$3" -v n="$4" '
    FILENAME == ARGV[1] { tier[++np] = $1; label[np] = $2; from[np] = $3; to[np] = $4; next }
    $1 == k && $2 == n { st[++ns] = $4; if (first == "" || $4 < first) first = $4 }
    END {
      covered = 0; pending = 0
      for (i = 1; i <= np; i++) {
        hit = 0
        for (j = 1; j <= ns; j++) if (st[j] >= from[i] && st[j] < to[i]) { hit = 1; break }
        if (hit) covered++
        else if (first == "" || to[i] <= first) pending++
        else print "missing\t" tier[i] "\t" label[i]
      }
      print "covered\t" covered; print "pending\t" pending
    }' "$1" "$2"
}

# ---- throwaway Postgres (restore-drill) --------------------------------------------------------
#
# docker: `docker run -d --rm` the image with a command that uses only its Postgres binaries
#         (initdb + postgres, as the image's postgres user), network none, unix socket only,
#         labelled restorable.drill=<run id>. Clients run in it with docker exec.
# local:  initdb as the postgres OS user in a temp dir, unix socket only in that dir.
# Both: fsync off, wal_level minimal (COPY into a table created in the same transaction skips WAL),
# no autovacuum: it is thrown away after the checks.

RESTORABLE_TA_SOCK_IN_CONTAINER=/tmp/restorable-drill/sock
# For an image's sh: sets b to the directory of the image's PostgreSQL binaries (PATH first, as the
# official image has them, else the newest /usr/lib/postgresql/*/bin). The drill's throwaway and
# the point-in-time recovery in a container (lib-pitr-restore.sh) both use it.
# shellcheck disable=SC2016 # expanded inside the container
RESTORABLE_IMAGE_PGBIN_SH='b=$(dirname "$(command -v postgres 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | tail -n 1)")'
RESTORABLE_TA_OPTS="-c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0 -c autovacuum=off -c max_wal_size=4GB -c checkpoint_timeout=1h -c work_mem=16MB"
# Memory for index builds and buffers, from what the host has free: maintenance_work_mem a quarter
# of MemAvailable (64 MB..1 GB), shared_buffers an eighth (128 MB..512 MB). ~10% faster restores
# on big tables than the defaults, without crowding a small host.
restorable_throwaway_mem_opts() {
  local avail mwm sb
  avail=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo 2>/dev/null || true)
  [[ $avail =~ ^[0-9]+$ ]] || avail=1024
  mwm=$((avail / 4)) sb=$((avail / 8))
  ((mwm < 64)) && mwm=64
  ((mwm > 1024)) && mwm=1024
  ((sb < 128)) && sb=128
  ((sb > 512)) && sb=512
  printf -- '-c maintenance_work_mem=%dMB -c shared_buffers=%dMB\n' "$mwm" "$sb"
}

# The newest local Postgres bin dir (RESTORABLE_DRILL_PGBIN overrides).
restorable_local_pgbin() {
  if [[ -n ${RESTORABLE_DRILL_PGBIN:-} ]]; then printf '%s\n' "${RESTORABLE_DRILL_PGBIN%/}"; return 0; fi
  local d
  d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)
  if [[ -n $d ]]; then dirname "$d"; return 0; fi
  if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then pg_config --bindir; return 0; fi
  d=$(command -v initdb 2>/dev/null) || return 1
  dirname "$d"
}

# restorable_throwaway_start RUNTIME IMAGE: start the throwaway Postgres in the background (it overlaps
# with listing and downloading); restorable_throwaway_ready waits for it and points the restorable_tgt_* target
# at it (user postgres). Whatever it started is known here, in the parent, for the EXIT trap.
RESTORABLE_TA_PID="" RESTORABLE_TA_SHARE="" RESTORABLE_TA_UID=""
restorable_throwaway_start() {
  local runtime=$1 image=$2
  RESTORABLE_RUN_ID=${RESTORABLE_RUN_ID:-$(date -u +%Y%m%d%H%M%S)-$$}
  RESTORABLE_TA_OPTS="$RESTORABLE_TA_OPTS $(restorable_throwaway_mem_opts)"
  case $runtime in
    docker)
      RESTORABLE_TA_KIND=docker
      # A private directory the container reads the dump from, through a FIFO (no copy on disk).
      RESTORABLE_TA_SHARE="$RESTORABLE_TMP/share"
      mkdir -m 0711 "$RESTORABLE_TA_SHARE"
      ;;
    local)
      RESTORABLE_TA_BIN=$(restorable_local_pgbin) || restorable_die "runtime local needs PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
      [[ -x $RESTORABLE_TA_BIN/initdb && -x $RESTORABLE_TA_BIN/pg_ctl && -x $RESTORABLE_TA_BIN/pg_restore ]] || restorable_die "no initdb/pg_ctl/pg_restore in $RESTORABLE_TA_BIN"
      RESTORABLE_TA_KIND=local
      RESTORABLE_TA_DIR="$RESTORABLE_TMP/pg"
      ;;
    *) restorable_die "unknown drill runtime \"$runtime\" (docker or local)" ;;
  esac
  rm -f -- "$RESTORABLE_TMP/work/throwaway.env" "$RESTORABLE_TMP/work/throwaway.fail"
  (
    # shellcheck disable=SC2317 # invoked by the trap
    restorable__ta_exit() {
      local rc=$?
      if [[ $rc -ne 0 ]]; then printf '%s\n' "${RESTORABLE_FAIL_REASON:-startup failed (status $rc)}" >"$RESTORABLE_TMP/work/throwaway.fail"; fi
    }
    trap restorable__ta_exit EXIT
    trap - INT TERM HUP
    RESTORABLE_STAGE_FILE=""
    t0=$(restorable_realtime)
    case $runtime in
      docker) restorable_throwaway_up_docker "$image" ;;
      local) restorable_throwaway_up_local ;;
    esac
    {
      declare -p RESTORABLE_T_KIND RESTORABLE_T_CID RESTORABLE_T_SOCK RESTORABLE_T_HOST RESTORABLE_T_PORT RESTORABLE_T_USER RESTORABLE_T_BIN RESTORABLE_T_DESC RESTORABLE_TA_CID RESTORABLE_TA_UID
      printf 'RESTORABLE_THROWAWAY_SECONDS=%s\n' "$(restorable_elapsed "$t0")"
    } | sed 's/^declare -- //' >"$RESTORABLE_TMP/work/throwaway.env.tmp"
    mv -f "$RESTORABLE_TMP/work/throwaway.env.tmp" "$RESTORABLE_TMP/work/throwaway.env"
  ) </dev/null &
  RESTORABLE_TA_PID=$!
}

# restorable_throwaway_ready: wait for restorable_throwaway_start; dies at the current stage when it failed.
# Sets RESTORABLE_THROWAWAY_SECONDS (how long the startup took).
restorable_throwaway_ready() {
  local rc=0
  if [[ -n $RESTORABLE_TA_PID ]]; then
    wait "$RESTORABLE_TA_PID" || rc=$?
    RESTORABLE_TA_PID=""
  fi
  if [[ $rc -ne 0 || ! -s $RESTORABLE_TMP/work/throwaway.env ]]; then
    restorable_die "$(cat "$RESTORABLE_TMP/work/throwaway.fail" 2>/dev/null || printf 'the throwaway Postgres did not start (status %s)' "$rc")"
  fi
  # shellcheck source=/dev/null
  . "$RESTORABLE_TMP/work/throwaway.env"
}

restorable_throwaway_up_docker() {
  local image=$1 err=$RESTORABLE_TMP/work/docker.err cid
  docker info >/dev/null 2>"$err" || restorable_die "docker is not reachable: $(restorable_last_line "$err")"
  # Only the image's Postgres binaries: find initdb on PATH or under /usr/lib/postgresql.
  local script
  # shellcheck disable=SC2016 # expanded inside the container
  script='set -eu
'"$RESTORABLE_IMAGE_PGBIN_SH"'
[ -x "$b/initdb" ] || { echo "no initdb in this image" >&2; exit 1; }
mkdir -p /tmp/restorable-drill/sock
"$b/initdb" -D /tmp/restorable-drill/data -U postgres --auth=trust -E UTF8 --no-locale --no-sync >/tmp/restorable-drill/initdb.log 2>&1 || { cat /tmp/restorable-drill/initdb.log >&2; exit 1; }
exec "$b/postgres" -D /tmp/restorable-drill/data -k /tmp/restorable-drill/sock '"$RESTORABLE_TA_OPTS"
  if ! cid=$(docker run -d --rm --label "restorable.drill=$RESTORABLE_RUN_ID" --label "restorable.host=$RESTORABLE_HOST" \
    --name "restorable-drill-$RESTORABLE_RUN_ID" --network none --user postgres -v "$RESTORABLE_TA_SHARE:/restorable-in:ro" \
    --entrypoint sh "$image" -c "$script" 2>"$err"); then
    restorable_die "cannot start a throwaway container from $image: $(restorable_last_line "$err")"
  fi
  RESTORABLE_TA_CID=$cid
  docker logs -f "$cid" >"$RESTORABLE_TMP/work/throwaway.log" 2>&1 &
  local logs=$! i
  for ((i = 0; i < 600; i++)); do
    if docker exec "$cid" pg_isready -q -h "$RESTORABLE_TA_SOCK_IN_CONTAINER" >/dev/null 2>&1; then break; fi
    if ! docker inspect --format '{{.State.Running}}' "$cid" 2>/dev/null | grep -qx true; then
      kill "$logs" 2>/dev/null || true
      restorable_log_file_tail "$RESTORABLE_TMP/work/throwaway.log" 10
      restorable_die "the throwaway container from $image exited during startup: $(restorable_last_line "$RESTORABLE_TMP/work/throwaway.log")"
    fi
    sleep 0.1
  done
  kill "$logs" 2>/dev/null || true
  wait "$logs" 2>/dev/null || true
  ((i < 600)) || restorable_die "the throwaway container from $image did not accept connections within 60 s"
  # The uid that reads the FIFO in the share (empty: stream through docker exec stdin instead).
  RESTORABLE_TA_UID=$(docker exec "$cid" id -u 2>/dev/null || true)
  RESTORABLE_T_KIND=exec RESTORABLE_T_CID=$cid RESTORABLE_T_SOCK=$RESTORABLE_TA_SOCK_IN_CONTAINER RESTORABLE_T_PORT="" RESTORABLE_T_USER=postgres
  RESTORABLE_T_DESC="throwaway container ${cid:0:12} ($image)"
}

restorable_throwaway_up_local() {
  local bin=$RESTORABLE_TA_BIN err=$RESTORABLE_TMP/work/initdb.err as=()
  mkdir -m 0700 "$RESTORABLE_TA_DIR"
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || restorable_die "runtime local runs initdb as the postgres OS user, which does not exist (apt-get install postgresql)"
    chown postgres: "$RESTORABLE_TA_DIR"
    as=(runuser -u postgres --)
  fi
  mkdir -p "$RESTORABLE_TA_DIR/sock" 2>/dev/null || "${as[@]}" mkdir -p "$RESTORABLE_TA_DIR/sock"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$RESTORABLE_TA_DIR/sock"; fi
  if ! (cd "$RESTORABLE_TA_DIR" && "${as[@]}" "$bin/initdb" -D "$RESTORABLE_TA_DIR/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync) >"$err" 2>&1; then
    restorable_log_file_tail "$err" 10
    restorable_die "initdb failed: $(restorable_last_line "$err")"
  fi
  # Unix socket only (listen_addresses empty): no TCP port to collide with; the port number only
  # names the socket file inside our own directory. The lock fd is not handed to the server.
  local port=$((20000 + RANDOM % 40000))
  if ! (cd "$RESTORABLE_TA_DIR" && restorable_without_lock "${as[@]}" "$bin/pg_ctl" -D "$RESTORABLE_TA_DIR/data" -l "$RESTORABLE_TA_DIR/server.log" \
    -o "-p $port -k $RESTORABLE_TA_DIR/sock $RESTORABLE_TA_OPTS" -w -t 60 start) >"$err" 2>&1; then
    restorable_log_file_tail "$RESTORABLE_TA_DIR/server.log" 10
    restorable_die "the throwaway cluster did not start: $(restorable_last_line "$RESTORABLE_TA_DIR/server.log")"
  fi
  RESTORABLE_T_KIND=native RESTORABLE_T_HOST="$RESTORABLE_TA_DIR/sock" RESTORABLE_T_PORT=$port RESTORABLE_T_USER=postgres RESTORABLE_T_BIN="$bin/"
  RESTORABLE_T_DESC="throwaway cluster in $RESTORABLE_TA_DIR (PostgreSQL $("$bin/postgres" -V | awk '{print $NF}'))"
}

# restorable_without_lock CMD...: run CMD without the lock's fd (a daemon must not keep the lock).
restorable_without_lock() {
  if [[ -n ${RESTORABLE_LOCK_FD:-} ]]; then "$@" {RESTORABLE_LOCK_FD}>&-; else "$@"; fi
}

# restorable_restore_throwaway DIR DB PG_RESTORE_OPTS...: decode the object into pg_restore in the
# throwaway. Runtime docker: through a FIFO in the share (pg_restore in the container reads it;
# no docker exec stdin relay, no copy on disk); otherwise (or when the FIFO cannot be handed to
# the container's user) a pipe into restorable_tgt_run. Statuses in DIR/pipe.status as restorable_decode_into.
restorable_restore_throwaway() {
  local dir=$1 db=$2
  shift 2
  if [[ $RESTORABLE_TA_KIND == docker && -n $RESTORABLE_TA_UID && -n $RESTORABLE_TA_SHARE ]]; then
    local fifo="$RESTORABLE_TA_SHARE/$db.pipe" wpid dst=0 rst=0 fd
    if mkfifo -m 0600 "$fifo" 2>/dev/null && chown "$RESTORABLE_TA_UID" "$fifo" 2>/dev/null; then
      restorable_progress_start "restore $RESTORABLE_MF_KEY" "$(stat -c %s -- "$RESTORABLE_OBJ" 2>/dev/null)" read "$RESTORABLE_OBJ"
      restorable_decode >"$fifo" 2>"$dir/decode.err" &
      wpid=$!
      # pg_restore opens a named archive twice (format check, then read): it must read the FIFO as
      # its stdin. The container's sh only redirects; the work is the image's pg_restore.
      # shellcheck disable=SC2016 # expanded by the container's sh
      docker exec "$RESTORABLE_T_CID" sh -c 'exec "$@" <"$0"' "/restorable-in/$db.pipe" \
        pg_restore -h "$RESTORABLE_T_SOCK" -U "$RESTORABLE_T_USER" -d "$db" "$@" </dev/null 2>"$dir/restore.err" || rst=$?
      # A writer still waiting for a reader that never came: let it open, then break its pipe.
      if kill -0 "$wpid" 2>/dev/null; then
        exec {fd}<>"$fifo"
        exec {fd}<&-
      fi
      wait "$wpid" || dst=$?
      restorable_progress_stop
      rm -f -- "$fifo"
      printf '%s %s\n' "$dst" "$rst" >"$dir/pipe.status"
      [[ $dst -eq 0 && $rst -eq 0 ]]
      return
    fi
    rm -f -- "$fifo"
  fi
  restorable_decode_into "$dir" restorable_tgt_run pg_restore "$db" "$@"
}

# restorable_throwaway_reap: remove what an earlier drill of this host left behind when it was killed
# with SIGKILL (no trap runs then): its labelled containers, and its temp dirs (marked with the
# host name) with the cluster in them. Only call while holding the drill lock: then no other
# drill of this host is running.
restorable_throwaway_reap() {
  local ids d pid
  if command -v docker >/dev/null 2>&1; then
    ids=$(docker ps -aq --no-trunc --filter "label=restorable.host=$RESTORABLE_HOST" --filter label=restorable.drill 2>/dev/null || true)
    if [[ -n $ids ]]; then
      restorable_log "removing throwaway container(s) an interrupted drill left behind: $(printf '%s\n' "$ids" | cut -c1-12 | paste -sd ' ' -)"
      # shellcheck disable=SC2086 # ids are hex, one per line
      docker rm -f -v $ids >/dev/null 2>&1 || true
    fi
  fi
  for d in "${TMPDIR:-/tmp}"/restorable-"$RESTORABLE_SCRIPT".*; do
    [[ -d $d && $d != "$RESTORABLE_TMP" && -f $d/host ]] || continue
    [[ $(<"$d/host") == "$RESTORABLE_HOST" ]] || continue
    if [[ -f $d/pg/data/postmaster.pid ]]; then
      pid=$(head -n 1 "$d/pg/data/postmaster.pid")
      if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill -QUIT "$pid" 2>/dev/null || true
        sleep 1
      fi
    fi
    restorable_log "removing the temp dir an interrupted drill left behind: $d"
    rm -rf -- "$d"
  done
  restorable_vol_reap
}

# Stop and remove whatever restorable_throwaway_start started (also while it is still starting).
# Idempotent; safe from the EXIT trap.
restorable_throwaway_down() {
  local midway=0
  if [[ -n $RESTORABLE_TA_PID ]]; then
    if kill -0 "$RESTORABLE_TA_PID" 2>/dev/null; then midway=1; fi
    restorable_kill_tree "$RESTORABLE_TA_PID"
    wait "$RESTORABLE_TA_PID" 2>/dev/null || true
    RESTORABLE_TA_PID=""
  fi
  case $RESTORABLE_TA_KIND in
    docker)
      local ids pass
      for pass in 1 2; do
        ids=$(docker ps -aq --no-trunc --filter "label=restorable.drill=$RESTORABLE_RUN_ID" 2>/dev/null || true)
        if [[ -n $RESTORABLE_TA_CID ]]; then ids=$(printf '%s\n%s\n' "$RESTORABLE_TA_CID" "$ids" | grep -v '^$' | sort -u); fi
        if [[ -n $ids ]]; then
          # shellcheck disable=SC2086 # ids are hex, one per line
          docker rm -f -v $ids >/dev/null 2>&1 || restorable_log "could not remove throwaway container(s): $ids"
        fi
        # A `docker run` cut off halfway may still create its container: look once more.
        if [[ $midway -eq 0 ]]; then break; fi
        sleep 1
      done
      ;;
    local)
      if [[ -n $RESTORABLE_TA_DIR && $midway -eq 1 ]]; then sleep 0.5; fi
      if [[ -n $RESTORABLE_TA_DIR && -f $RESTORABLE_TA_DIR/data/postmaster.pid ]]; then
        local as=()
        if [[ $(id -u) -eq 0 ]]; then as=(runuser -u postgres --); fi
        (cd "$RESTORABLE_TA_DIR" && "${as[@]}" "$RESTORABLE_TA_BIN/pg_ctl" -D "$RESTORABLE_TA_DIR/data" -m immediate -w -t 30 stop) >/dev/null 2>&1 ||
          restorable_log "could not stop the throwaway cluster in $RESTORABLE_TA_DIR"
      fi
      if [[ -n $RESTORABLE_TA_DIR ]]; then rm -rf -- "$RESTORABLE_TA_DIR"; fi
      ;;
  esac
  RESTORABLE_TA_KIND="" RESTORABLE_TA_CID="" RESTORABLE_TA_DIR=""
}

# ---- volumes (restore-drill) ------------------------------------------------------------------
#
# A volume's restore point is drilled in a throwaway Docker volume (restorable-drill-<run id>-<n>),
# labelled like the throwaway Postgres (restorable.drill=<run id>, restorable.host=<host>) plus
# restorable.role=volume, and so are the short-lived containers that fill and list it: the EXIT
# trap removes them (restorable_vol_down), and the next drill of the host reaps what a SIGKILLed one left
# (restorable_vol_reap, from restorable_throwaway_reap). The tarball is decoded straight into `tar -x` in the
# container (no decompressed copy on disk); the listing is computed there by the same script
# backup-volumes ran (lib.sh RESTORABLE_VOLUME_LISTING_SH) and compared entry by entry.

RESTORABLE_VOL_LABEL=restorable.role=volume
restorable_vol_labels() { printf '%s\n' --label "restorable.drill=$RESTORABLE_RUN_ID" --label "restorable.host=$RESTORABLE_HOST" --label "$RESTORABLE_VOL_LABEL"; }

# restorable_vol_run [DOCKER RUN ARGS...] -- IMAGE CMD...: a labelled throwaway container, no network, no logs.
restorable_vol_run() {
  local labels
  mapfile -t labels < <(restorable_vol_labels)
  docker run --rm --network none --log-driver none "${labels[@]}" "$@"
}

# restorable_vol_create NAME: create the labelled throwaway volume NAME.
restorable_vol_create() {
  local labels
  mapfile -t labels < <(restorable_vol_labels)
  docker volume create "${labels[@]}" "$1" >/dev/null
}

# restorable_vol_remove NAME...: remove throwaway volumes (and first any labelled container of this run
# still using them). Idempotent.
restorable_vol_remove() {
  local ids
  ids=$(docker ps -aq --no-trunc --filter "label=restorable.drill=$RESTORABLE_RUN_ID" --filter "label=$RESTORABLE_VOL_LABEL" 2>/dev/null || true)
  # shellcheck disable=SC2086 # ids are hex, one per line
  if [[ -n $ids ]]; then docker rm -f -v $ids >/dev/null 2>&1 || true; fi
  local v
  for v in "$@"; do
    if docker volume inspect "$v" >/dev/null 2>&1; then
      docker volume rm -f "$v" >/dev/null 2>&1 || restorable_log "could not remove the throwaway volume $v"
    fi
  done
}

# restorable_vol_down: remove every throwaway volume (and container) of this run (the EXIT trap's part).
RESTORABLE_VOL_USED=0   # set by the drill before its first volume: only then is there anything to remove
restorable_vol_down() {
  [[ $RESTORABLE_VOL_USED -eq 1 && -n $RESTORABLE_RUN_ID ]] && command -v docker >/dev/null 2>&1 || return 0
  local vols
  vols=$(docker volume ls -q --filter "label=restorable.drill=$RESTORABLE_RUN_ID" --filter "label=$RESTORABLE_VOL_LABEL" 2>/dev/null || true)
  # shellcheck disable=SC2086 # volume names from docker, one per line, no spaces
  if [[ -n $vols ]] || docker ps -aq --filter "label=restorable.drill=$RESTORABLE_RUN_ID" --filter "label=$RESTORABLE_VOL_LABEL" 2>/dev/null | grep -q .; then
    restorable_vol_remove $vols
  fi
}

# restorable_vol_reap: the throwaway volumes an interrupted drill of this host left behind (its containers
# are gone by now: restorable_throwaway_reap removed them first).
restorable_vol_reap() {
  command -v docker >/dev/null 2>&1 || return 0
  local vols
  vols=$(docker volume ls -q --filter "label=restorable.host=$RESTORABLE_HOST" --filter label=restorable.drill --filter "label=$RESTORABLE_VOL_LABEL" 2>/dev/null || true)
  [[ -n $vols ]] || return 0
  restorable_log "removing throwaway volume(s) an interrupted drill left behind: $(printf '%s\n' "$vols" | paste -sd ' ' -)"
  # shellcheck disable=SC2086 # volume names from docker, one per line, no spaces
  docker volume rm -f $vols >/dev/null 2>&1 || true
}

# restorable_vol_extract DIR VOLUME: decode the object (restorable_fetch_object) into `tar -x` in a container over
# VOLUME, the way `restore --volume` does. Statuses and errors as restorable_decode_into.
restorable_vol_extract() {
  local dir=$1 vol=$2
  restorable_decode_into "$dir" restorable_vol_run -i -v "$vol:/data" "$RESTORABLE_VOLUME_IMAGE" tar --numeric-owner -C /data -xf -
}

# restorable_vol_listing VOLUME OUT: the listing of VOLUME (read-only mount) into OUT; errors in OUT.err.
restorable_vol_listing() {
  restorable_vol_run -v "$1:/data:ro" "$RESTORABLE_VOLUME_IMAGE" sh -c "$RESTORABLE_VOLUME_LISTING_SH" sh /data >"$2" 2>"$2.err"
}

# restorable_vol_fetch_listing MANIFEST_KEY DIR: the listing the manifest (RESTORABLE_MF) names, downloaded,
# checked against its sha256 and size, decoded into DIR/listing.expected. Sets RESTORABLE_VOL_LKEY and
# RESTORABLE_VOL_LENTRIES; returns 3 (nothing done) when the manifest names no listing (an older backup).
restorable_vol_fetch_listing() {
  local mkey=$1 dir=$2 fields lsha lsize f=$2/listing.stored actual
  fields=$(jq -r 'if (.listing | type) == "object" then [.listing.key, .listing.sha256, (.listing.size // ""), (.listing.entries // "")] | map(tostring) | join("\u001f") else "" end' "$RESTORABLE_MF")
  [[ -n $fields ]] || return 3
  IFS=$'\x1f' read -r RESTORABLE_VOL_LKEY lsha lsize RESTORABLE_VOL_LENTRIES <<<"$fields"
  [[ $RESTORABLE_VOL_LKEY == "${mkey%/*}/"* ]] || restorable_die "manifest $mkey: listing.key $RESTORABLE_VOL_LKEY is not beside the manifest"
  [[ ${lsha,,} =~ ^[0-9a-f]{64}$ ]] || restorable_die "manifest $mkey: listing.sha256 is missing or malformed"
  restorable_get "$RESTORABLE_VOL_LKEY" "$f" "${lsize:-0}" || restorable_die "cannot download the listing s3://$RESTORABLE_BUCKET/$RESTORABLE_VOL_LKEY: $(restorable_last_line "$f.err")"
  actual=$(sha256sum "$f" | cut -d ' ' -f 1)
  [[ $actual == "${lsha,,}" ]] || restorable_die "sha256 mismatch for the listing s3://$RESTORABLE_BUCKET/$RESTORABLE_VOL_LKEY: the manifest says ${lsha,,}, the download has $actual"
  if [[ -n $lsize && $lsize != "$(stat -c %s "$f")" ]]; then
    restorable_die "size mismatch for the listing s3://$RESTORABLE_BUCKET/$RESTORABLE_VOL_LKEY: the manifest says $lsize bytes, downloaded $(stat -c %s "$f")"
  fi
  # Encrypted and compressed like the object it describes.
  (RESTORABLE_OBJ=$f restorable_decode) >"$dir/listing.expected" 2>"$dir/listing.err" ||
    restorable_die "cannot decrypt/decompress the listing $RESTORABLE_VOL_LKEY: $(restorable_last_line "$dir/listing.err")"
  rm -f -- "$f"
  head -n 1 "$dir/listing.expected" | grep -q '^# restorable volume listing 1:' ||
    restorable_die "the listing $RESTORABLE_VOL_LKEY is not a restorable volume listing (format 1)"
}

# restorable_vol_path HEX: a path of the listing as text (bytes as they are; control characters,
# backslash and DEL escaped as \n, \t, \\, \xNN), for reasons and the report.
restorable_vol_path() {
  local h=$1 out="" i b c
  [[ $h == 2e ]] && { printf '.\n'; return; }
  for ((i = 0; i < ${#h}; i += 2)); do
    b=$((16#${h:i:2}))
    if ((b == 10)); then out+='\n'
    elif ((b == 9)); then out+='\t'
    elif ((b == 92)); then out+="\\\\"
    elif ((b < 32 || b == 127)); then out+=$(printf '\\x%02x' "$b")
    else printf -v c '%b' "\\x${h:i:2}"; out+=$c
    fi
  done
  printf '%s\n' "$out"
}

# restorable_vol_compare EXPECTED ACTUAL: compare two sorted listings entry by entry (a merge, in constant
# memory). Prints "<hex path>\t<what differs>" for the first difference (a symlink target:
# "<hex path>\ttarget\t<hex expected>\t<hex restored>") and returns 1; returns 0 when equal.
# restorable_vol_diff_reason turns that line into text. Not compared: the mtime of directories and symlinks (tar -x sets a directory's mtime
# before filling it, and busybox tar does not restore a symlink's).
restorable_vol_compare() {
  awk -v E="$1" -v A="$2" '
    function rd(f,   l) { while ((getline l < f) > 0) if (substr(l, 1, 1) != "#") return l; return "" }
    function kind(t) { return t == "f" ? "file" : t == "d" ? "directory" : t == "l" ? "symlink" : t == "p" ? "fifo" : t == "c" ? "character device" : t == "b" ? "block device" : t }
    function diff(p, what) { printf "%s\t%s\n", p, what; found = 1; exit 1 }
    BEGIN {
      e = rd(E); a = rd(A)
      while (e != "" || a != "") {
        split(e, x, " "); split(a, y, " ")
        for (i = 1; i <= 8; i++) { x[i] = x[i] ""; y[i] = y[i] "" }   # compare as strings, never numbers
        if (a == "" || (e != "" && x[1] < y[1])) diff(x[1], "missing")
        if (e == "" || y[1] < x[1]) diff(y[1], "unexpected")
        if (x[2] != y[2]) diff(x[1], "type " kind(x[2]) " in the listing, " kind(y[2]) " restored")
        if (x[3] != y[3]) diff(x[1], "mode " x[3] " in the listing, " y[3] " restored")
        if (x[4] != y[4]) diff(x[1], "owner " x[4] " in the listing, " y[4] " restored")
        if (x[5] != y[5]) diff(x[1], "size " x[5] " in the listing, " y[5] " restored")
        if (x[7] != y[7]) diff(x[1], "sha256 " x[7] " in the listing, " y[7] " restored")
        if (x[8] != y[8]) diff(x[1], "target\t" x[8] "\t" y[8])
        if (x[2] != "d" && x[2] != "l" && x[6] != y[6]) diff(x[1], "mtime " x[6] " in the listing, " y[6] " restored")
        e = rd(E); a = rd(A)
      }
    }'
}

# restorable_vol_diff_reason LINE: "path P: mode 0644 in the listing, 0600 restored" from restorable_vol_compare.
restorable_vol_diff_reason() {
  local p what e a
  IFS=$'\t' read -r p what e a <<<"$1"
  if [[ $what == target ]]; then
    what="symlink target \"$(restorable_vol_path "$e")\" in the listing, \"$(restorable_vol_path "$a")\" restored"
  fi
  printf 'path %s: %s\n' "$(restorable_vol_path "$p")" "$what"
}
