# Shared set-up for scripts/test and scripts/demo: install what is missing, nothing more.
# Sourced, not run. Works on a fresh Debian 12 machine with Python >= 3.10.

PORTSIDE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${PORTSIDE_VENV:-$PORTSIDE_ROOT/.venv}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
  # $1: what to install, e.g. ".[dev]"
  local spec="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating a virtualenv in $VENV"
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.portside-installed"
  if [ ! -f "$stamp" ] || [ "$PORTSIDE_ROOT/pyproject.toml" -nt "$stamp" ] || [ "$(cat "$stamp")" != "$spec" ]; then
    say "installing portside$spec into the virtualenv"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    (cd "$PORTSIDE_ROOT" && "$VENV/bin/python" -m pip install -q -e "$spec")
    printf '%s' "$spec" > "$stamp"
  fi
}
