# Shared by the scripts that run the real gateway in the background
# (bench-ledger.sh, soak.sh). Source it; it defines functions only.
#
#   gateway_start BIN LOG  run "BIN serve" in the background, configured by the
#                          caller's environment (PLINTH_LISTEN=127.0.0.1:0 picks
#                          a free port), its log in LOG; wait until it logs the
#                          address it listens on; sets gateway_pid and
#                          gateway_addr (host:port). Fails, showing the log, if
#                          the gateway exits or says nothing within a minute.
#   gateway_stop           stop it (SIGTERM: a graceful shutdown) and wait for it

gateway_pid=
gateway_addr=

gateway_start() {
  local bin=$1 log=$2
  "$bin" serve 2>"$log" &
  gateway_pid=$!
  gateway_addr=
  for _ in $(seq 600); do
    gateway_addr=$(grep -o '"addr":"[^"]*"' "$log" | head -1 | cut -d'"' -f4 || true)
    [[ -n $gateway_addr ]] && return 0
    kill -0 "$gateway_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log" >&2
  echo "the gateway did not start" >&2
  return 1
}

gateway_stop() {
  if [[ -n $gateway_pid ]]; then
    kill "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
    gateway_pid=
  fi
}
