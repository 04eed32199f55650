# Sourced by every script here (not run): strict mode, and a failure that stops a script
# says so on one line, naming the script, the line and the command, with a non-zero exit.
# A failing call of another script here is not reported again by its caller: the script
# that failed has said what failed.
set -euo pipefail
trap 'status=$?; case $BASH_COMMAND in *scripts/* | *\$here/*) ;; *) echo "error: ${0##*/}: line $LINENO: \`$BASH_COMMAND\` failed (exit $status)" >&2 ;; esac' ERR

# The first TCP port on 127.0.0.1 from $1 upwards that nothing answers on.
free_port() {
  local port
  for port in $(seq "$1" "$(($1 + 200))"); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  echo "error: no free port on 127.0.0.1 in $1-$(($1 + 200))" >&2
  return 1
}
