# shellcheck shell=bash
# restorable: progress of long streams, for backup, backup-volumes, restore and restore-drill
# (sourced by lib.sh; installed as <scriptsDir>/lib-progress.sh, 0644). A 3 a.m. restore of a
# 50 GB database must never look hung.
#
# A stream is watched from the side, never touched: a background watcher samples a byte counter
# the stream already has, so the bytes and exit statuses of the pipeline stay exactly what they
# were. What is shown where:
#   - stderr is a terminal: one line, redrawn in place (\r) every second once the stream has run
#     for a second: bytes done, rate, and with a known total the percentage and an ETA (downloads
#     and decodes know it from the manifest's size). The line is erased when the stream ends.
#   - otherwise (cron's log, a pipe): nothing for a stream shorter than RESTORABLE_PROGRESS_INTERVAL
#     seconds (default 30), then one log line every interval:
#       <UTC time> restorable <job>: progress: <what>: 1.2 GiB of 50.0 GiB (2%), 85.3 MiB/s, ETA 9m40s, 5m00s elapsed (1288490188 bytes)
#   - RESTORABLE_PROGRESS=off: nothing at all.
# The watcher stops with its stream: restorable_progress_stop ends it and waits for it, so no
# progress line ever follows the stage's own result line; a watcher whose shell died without
# stopping it ends within a second on its own.
#
# Conventions: public functions restorable_progress_*, internal restorable__progress_*.

RESTORABLE_PROGRESS_PID=
RESTORABLE__PROGRESS_OWNER=
RESTORABLE__PROGRESS_FD=

# restorable_progress_start WHAT TOTAL PROBE ARG: watch a stream until restorable_progress_stop
# (one watcher per shell: starting another stops the first). WHAT names it in the line
# ("download daily/postgres/app/20261124T030000Z.dump.zst"); TOTAL is its size in bytes (0 or
# empty: unknown, then no percentage and no ETA). PROBE says where the byte count comes from:
#   size FILE   the bytes written into FILE (or into the AWS CLI's temporary FILE.XXXXXXXX beside
#               it): a download
#   read FILE   how far the processes of this shell's process tree that have FILE open have read
#               it (their file offset, /proc/PID/fdinfo): a verify or a decode of a downloaded file
#   rchar PID [DONE_FILE]
#               the bytes process PID has read (/proc/PID/io): the stream's byte counter (wc -c);
#               once PID is gone, the count it wrote into DONE_FILE
# Never fails, never changes $? of what it watches (call it before, stop after).
restorable_progress_start() {
  restorable_progress_stop
  [[ ${RESTORABLE_PROGRESS:-auto} != off ]] || return 0
  local what=$1 total=${2:-0} probe=$3 arg=$4 done_file=${5:-} tty=0 interval=${RESTORABLE_PROGRESS_INTERVAL:-30}
  [[ $total =~ ^[0-9]+$ ]] || total=0
  [[ $interval =~ ^[0-9]+$ ]] && ((interval > 0)) || interval=30
  if [[ -t 2 ]]; then tty=1; fi
  # The stop is a line on a FIFO (opened read-write here, so it never blocks, and unlinked at
  # once), not a signal: a signal that reached the watcher before it reset the traps it inherited
  # would run this shell's own exit handler in it.
  local fifo fd
  fifo=$(mktemp -u "${TMPDIR:-/tmp}/restorable-progress.XXXXXXXX" 2>/dev/null) || return 0
  mkfifo -m 0600 -- "$fifo" 2>/dev/null || return 0
  if ! exec {fd}<>"$fifo"; then
    rm -f -- "$fifo"
    return 0
  fi
  rm -f -- "$fifo"
  # (Expanded in the background job, $BASHPID would be the watcher's own.)
  local owner=$BASHPID
  restorable__progress_watch "$what" "$total" "$probe" "$arg" "$tty" "$interval" "$owner" "$fd" "$done_file" </dev/null &
  RESTORABLE_PROGRESS_PID=$! RESTORABLE__PROGRESS_OWNER=$owner RESTORABLE__PROGRESS_FD=$fd
  return 0
}

# restorable_progress_stop: end the watcher (its terminal line erased) and wait until it is gone.
restorable_progress_stop() {
  local pid=${RESTORABLE_PROGRESS_PID:-} fd=${RESTORABLE__PROGRESS_FD:-}
  [[ -n $pid ]] || return 0
  RESTORABLE_PROGRESS_PID='' RESTORABLE__PROGRESS_FD=''
  # A subshell that inherited the variables does not own that watcher (and cannot wait for it).
  [[ $RESTORABLE__PROGRESS_OWNER == "$BASHPID" ]] || return 0
  if ! { printf 'stop\n' >&"$fd"; } 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  exec {fd}>&-
  return 0
}

# ------------------------------------------------------------------------------------------ internals

# restorable__progress_size N VAR: VAR = N bytes for people ("812 B", "1.2 GiB").
restorable__progress_size() {
  local n=$1 i=0 d=1
  local -a units=(B KiB MiB GiB TiB PiB)
  while ((i < 5 && n >= d * 1024)); do d=$((d * 1024)) i=$((i + 1)); done
  if ((i == 0)); then
    printf -v "$2" '%d B' "$n"
  else
    printf -v "$2" '%d.%d %s' "$((n / d))" "$(((n % d) * 10 / d))" "${units[i]}"
  fi
}

# restorable__progress_time SECONDS VAR: VAR = "40s", "9m40s", "2h05m".
restorable__progress_time() {
  local s=$1
  if ((s < 60)); then
    printf -v "$2" '%ds' "$s"
  elif ((s < 3600)); then
    printf -v "$2" '%dm%02ds' "$((s / 60))" "$((s % 60))"
  else
    printf -v "$2" '%dh%02dm' "$((s / 3600))" "$((s % 3600 / 60))"
  fi
}

# restorable__progress_us: microseconds since the epoch (EPOCHREALTIME without its decimal point).
restorable__progress_us() { printf -v "$1" '%s' "${EPOCHREALTIME//[!0-9]/}"; }

# restorable__progress_sample PROBE ARG OWNER [DONE_FILE]: sets RESTORABLE__PROGRESS_BYTES to the probe's count,
# or empty when it has none (yet). Keeps the reader it found in RESTORABLE__PROGRESS_FOUND.
RESTORABLE__PROGRESS_FOUND=
restorable__progress_sample() {
  local probe=$1 arg=$2 owner=$3 done_file=${4:-} k v best='' f s b
  RESTORABLE__PROGRESS_BYTES='' RESTORABLE__PROGRESS_DONE=0
  case $probe in
    rchar)
      if [[ ! -r /proc/$arg/io ]]; then
        if [[ -n $done_file && -s $done_file ]]; then
          read -r v <"$done_file" 2>/dev/null || true
          if [[ $v =~ ^[0-9]+$ ]]; then RESTORABLE__PROGRESS_BYTES=$v RESTORABLE__PROGRESS_DONE=1; fi
        fi
        return 0
      fi
      while read -r k v; do
        if [[ $k == rchar: ]]; then RESTORABLE__PROGRESS_BYTES=$v; fi
      done <"/proc/$arg/io" 2>/dev/null
      ;;
    size)
      # The AWS CLI downloads into FILE.<8 random hex digits> and renames it at the end; its
      # parts arrive out of order, so a sparse file's allocated blocks count, not its length.
      local out bs
      out=$(stat -c '%s %b %B' -- "$arg" "$arg".???????? 2>/dev/null)
      while read -r s b bs; do
        [[ $s =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $bs =~ ^[0-9]+$ ]] || continue
        b=$((b * bs))
        if ((b < s)); then s=$b; fi
        if [[ -z $best ]] || ((s > best)); then best=$s; fi
      done <<<"$out"
      RESTORABLE__PROGRESS_BYTES=$best
      ;;
    read)
      # The reader found last time, if it still has FILE open; else search this shell's tree.
      if [[ -n $RESTORABLE__PROGRESS_FOUND && ${RESTORABLE__PROGRESS_FOUND} -ef $arg ]]; then
        restorable__progress_pos "$RESTORABLE__PROGRESS_FOUND"
        return 0
      fi
      RESTORABLE__PROGRESS_FOUND=
      local -a todo=("$owner")
      local p c
      while ((${#todo[@]} > 0)); do
        p=${todo[0]}
        todo=("${todo[@]:1}")
        for f in /proc/"$p"/fd/*; do
          if [[ $f -ef $arg ]]; then
            restorable__progress_pos "$f"
            if [[ -n $RESTORABLE__PROGRESS_BYTES ]] && { [[ -z $best ]] || ((RESTORABLE__PROGRESS_BYTES > best)); }; then
              best=$RESTORABLE__PROGRESS_BYTES
              RESTORABLE__PROGRESS_FOUND=$f
            fi
          fi
        done
        if [[ -r /proc/$p/task/$p/children ]]; then
          read -r -a c <"/proc/$p/task/$p/children" 2>/dev/null || true
          todo+=("${c[@]}")
        fi
      done
      RESTORABLE__PROGRESS_BYTES=$best
      ;;
  esac
  return 0
}

# restorable__progress_pos /proc/PID/fd/N: RESTORABLE__PROGRESS_BYTES = that descriptor's offset.
restorable__progress_pos() {
  local info=${1/\/fd\//\/fdinfo\/} k v
  RESTORABLE__PROGRESS_BYTES=
  while read -r k v; do
    if [[ $k == pos: ]]; then RESTORABLE__PROGRESS_BYTES=$v; break; fi
  done <"$info" 2>/dev/null
  return 0
}

# restorable__progress_line BYTES ELAPSED_S RATE_BPS TOTAL VAR: VAR = "1.2 GiB of 50.0 GiB (2%), 85.3 MiB/s, ETA 9m40s"
# (BYTES empty: no count yet; RATE_BPS "finishing": the counting process is done, the rest of
# the stream is not, e.g. the last parts of an upload, or pg_restore building indexes after it
# read everything). The ETA comes from the average rate since the start.
restorable__progress_line() {
  local bytes=$1 el=$2 rate=$3 total=$4 out h t r eta
  if [[ -z $bytes ]]; then
    printf -v "$5" 'no byte count yet'
    return 0
  fi
  restorable__progress_size "$bytes" h
  out=$h
  if ((total > 0)); then
    restorable__progress_size "$total" t
    local pct=$((bytes * 100 / total))
    if ((pct > 100)); then pct=100; fi
    out+=" of $t ($pct%)"
  fi
  if [[ $rate == finishing ]]; then
    printf -v "$5" '%s, finishing' "$out"
    return 0
  fi
  restorable__progress_size "$rate" r
  out+=", $r/s"
  if ((total > 0 && bytes > 0 && el > 0 && bytes < total)); then
    restorable__progress_time "$(((total - bytes) * el / bytes))" eta
    out+=", ETA $eta"
  fi
  printf -v "$5" '%s' "$out"
}

# restorable__progress_seen: in the watcher, a count that was there and is gone (the counting
# process ended) stays at its last value.
restorable__progress_seen() {
  if [[ -n $bytes ]]; then seen=$bytes; else bytes=$seen; fi
}

# restorable__progress_watch WHAT TOTAL PROBE ARG TTY INTERVAL OWNER STOP_FD [DONE_FILE]: the watcher (in the background).
restorable__progress_watch() {
  local what=$1 total=$2 probe=$3 arg=$4 tty=$5 interval=$6 owner=$7 tick=$8 done_file=${9:-}
  # None of the job's handlers (exit, signals, errors) may run in here.
  trap - EXIT ERR TERM HUP
  trap '' INT
  set +e
  local drawn=0
  local t0 now el bytes seen='' last=0 last_t rate line cols=80 label next=$interval
  local -a hist_t=() hist_b=()
  restorable__progress_us t0
  last_t=$t0
  if ((tty)); then
    local c
    c=$(stty size <&2 2>/dev/null)
    c=${c##* }
    if [[ $c =~ ^[0-9]+$ ]] && ((c > 20)); then cols=$c; fi
  fi
  while :; do
    # `read -t` on the stop FIFO: a one-second sleep without a child process, ended at once by
    # restorable_progress_stop's line.
    if read -r -t 1 -u "$tick" _; then
      if ((drawn)); then printf '\r\033[K' >&2; fi
      exit 0
    fi
    [[ -e /proc/$owner ]] || exit 0
    restorable__progress_us now
    el=$(((now - t0) / 1000000))
    if ((tty)); then
      restorable__progress_sample "$probe" "$arg" "$owner" "$done_file"
      bytes=$RESTORABLE__PROGRESS_BYTES
      restorable__progress_seen
      # Rate over the last five seconds.
      hist_t+=("$now") hist_b+=("${bytes:-0}")
      if ((${#hist_t[@]} > 6)); then hist_t=("${hist_t[@]:1}") hist_b=("${hist_b[@]:1}"); fi
      rate=0
      if ((${#hist_t[@]} == 1 && now > t0)); then
        rate=$((${bytes:-0} * 1000000 / (now - t0)))
      elif ((now > hist_t[0] && hist_b[-1] >= hist_b[0])); then
        rate=$(((hist_b[-1] - hist_b[0]) * 1000000 / (now - hist_t[0])))
      fi
      if [[ -z $RESTORABLE__PROGRESS_BYTES && -n $bytes ]] || ((RESTORABLE__PROGRESS_DONE)); then rate=finishing; fi
      restorable__progress_line "$bytes" "$el" "$rate" "$total" line
      # Too wide for the terminal: keep the verb and the end of the name ("download ...app/X.dump.zst").
      label=$what
      if ((${#label} + ${#line} + 3 > cols)); then
        local verb=${what%% *}
        local keep=$((cols - ${#line} - ${#verb} - 7))
        if ((keep < 1)); then label=$verb; else label="$verb ...${what: -keep}"; fi
      fi
      printf '\r%s: %s\033[K' "$label" "$line" >&2
      drawn=1
    elif ((el >= next)); then
      restorable__progress_sample "$probe" "$arg" "$owner" "$done_file"
      bytes=$RESTORABLE__PROGRESS_BYTES
      restorable__progress_seen
      rate=0
      if [[ -n $bytes ]] && ((bytes >= last && now > last_t)); then rate=$(((bytes - last) * 1000000 / (now - last_t))); fi
      if [[ -z $RESTORABLE__PROGRESS_BYTES && -n $bytes ]] || ((RESTORABLE__PROGRESS_DONE)); then rate=finishing; fi
      restorable__progress_line "$bytes" "$el" "$rate" "$total" line
      local e
      restorable__progress_time "$el" e
      if [[ -n $bytes ]]; then
        restorable_log "progress: $what: $line, $e elapsed ($bytes bytes)"
        last=$bytes last_t=$now
      else
        restorable_log "progress: $what: $e elapsed (no byte count available)"
      fi
      next=$((next + interval))
    fi
  done
}
