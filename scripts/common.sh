# Sourced by every script here and in bench/ (not run): strict mode, and a failure that
# stops a script says so on one line, naming the script, the line and the command, with a
# non-zero exit. The ERR trap reaches into functions (-E), where the innermost failure
# speaks and the callers it unwinds through stay quiet; a command substitution fails as a
# whole (inherit_errexit) and is reported by the line that holds it. A call of another of
# these scripts that fails is not reported again by its caller: that script has said what
# failed. Failures under `set +e` (a status a script reads itself) are not reported.
set -Eeuo pipefail
shopt -s inherit_errexit
_slipway_failed() {
  local status=$1 command=$2 line=$3
  [[ $- == *e* ]] || return 0
  ((BASH_SUBSHELL == 0)) || return 0
  [[ -n "${_slipway_reported:-}" ]] && return 0
  _slipway_reported=1
  case $command in
    scripts/* | *" scripts/"* | *'$(scripts/'* | '"$here/'* | *'$("$here/'* | *'/../scripts/'*) return 0 ;;
  esac
  echo "error: ${0##*/}: line $line: \`$command\` failed (exit $status)" >&2
}
trap '_slipway_failed $? "$BASH_COMMAND" $LINENO' ERR

# The first TCP port on 127.0.0.1 from $1 upwards that nothing answers on.
free_port() {
  local port
  for port in $(seq "$1" "$(($1 + 200))"); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  echo "error: no free port on 127.0.0.1 in $1-$(($1 + 200))" >&2
  return 1
}
