# Shared by the project's scripts: messages, the toolchain choice, and the build environment.
# Sourced, never run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die() {
  printf '\033[1;31merror:\033[0m %s\n' "$*" >&2
  exit 1
}

# Runs a command as root (directly, or through sudo when there is one).
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "'$*' needs root and there is no sudo: run it as root, then run this script again"
  fi
}

APT_UPDATED=
apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    die "need the packages $* and there is no apt-get: install them by hand (see README.md, Prerequisites)"
  if [ -z "$APT_UPDATED" ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The version of a crate that Cargo.lock pins, e.g. `locked_version wasm-bindgen`.
locked_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

# The environment every cargo command of the scripts shares. cargo-leptos sets these while it
# builds, and crates read some of them at compile time: plain cargo commands set the same values
# so that they reuse cargo-leptos's artifacts instead of rebuilding the world.
export LEPTOS_OUTPUT_NAME=billing
export LEPTOS_SITE_ROOT=target/site
export LEPTOS_SITE_PKG_DIR=pkg
export LEPTOS_HASH_FILES=true

# CI builds each crate once: incremental compilation would only cost time and disk there.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
fi

# How the WASM front end is compiled here, chosen by scripts/bootstrap:
#  - rustup: the default toolchain has the wasm32 target;
#  - debian-web: Debian's rustc-web with the standard library built from source (offline machines).
# BILLING_WASM_TOOLCHAIN=debian-web forces the second, to test it.
wasm_mode() {
  if [ "${BILLING_WASM_TOOLCHAIN:-}" != debian-web ] &&
    rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo rustup
  elif rustup toolchain list 2>/dev/null | grep -q '^debian-web'; then
    echo debian-web
  else
    echo none
  fi
}

# Every build of the front end is split (cargo-leptos `--split`): the code of a lazy island
# (`#[island(lazy)]`: the admin tools, the login and sign-up forms) is a file of its own, loaded
# only by a page that shows the island, so the billing page does not download it. The tests
# run what ships: split. (The feature makes those islands lazy: without the split they must not be.)
SPLIT="--split --lib-features=lazy-islands"

# Runs cargo-leptos with the front end built by the chosen toolchain. The server part always
# uses the default toolchain, as the tests and clippy do, so its artifacts are shared.
#   leptos_build [cargo leptos build flags...]
leptos_build() {
  if is_release "$@"; then
    release_front_end "$@"
    cargo leptos build --server-only "$@"
    return
  fi
  case "$(wasm_mode)" in
    rustup) cargo leptos build $SPLIT "$@" ;;
    debian-web)
      RUSTUP_TOOLCHAIN=debian-web RUSTC_BOOTSTRAP=1 \
        cargo leptos build --frontend-only $SPLIT --lib-cargo-args=-Zbuild-std=std,panic_abort "$@"
      cargo leptos build --server-only "$@"
      ;;
    *) die "no toolchain can build the WASM front end: run scripts/bootstrap" ;;
  esac
}

is_release() {
  local arg
  for arg in "$@"; do [ "$arg" = --release ] && return 0; done
  return 1
}

# The front end users download: Debian's toolchain (scripts/bootstrap installs it), whose
# standard library's source is compiled with the WASM, with `panic=immediate-abort` (a panic
# stops the WASM at once: no message is formatted, so none of the panic machinery, the
# formatting it pulls in, or the source locations are in the download), no `Debug` output
# (`-Zfmt-debug=none`: a `{:?}` writes nothing; the browser shows only messages made with
# `Display`, the server's among them) and no source locations (`-Zlocation-detail=none`), and
# std's `optimize_for_size`. Debug builds keep all of it. These rustflags replace the
# workspace's build.rustflags for the WASM, so `erase_components` is repeated.
release_front_end() {
  rustup toolchain list | grep -q '^debian-web' ||
    die "a release front end needs Debian's rustc-web toolchain: run scripts/bootstrap"
  RUSTUP_TOOLCHAIN=debian-web RUSTC_BOOTSTRAP=1 \
    CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
    CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--cfg erase_components -Zunstable-options -Cpanic=immediate-abort -Zfmt-debug=none -Zlocation-detail=none" \
    cargo leptos build --frontend-only $SPLIT "$@"
}

# Writes `.br` and `.gz` beside the front end's files, as `--precompress` does for a release
# build (which only it does): the server sends those as they are. Quick levels: a debug WASM is
# 10 MiB. Files compressed before (older builds' hashed files stay in the folder) are left alone.
precompress_front_end() {
  node - "$LEPTOS_SITE_ROOT/$LEPTOS_SITE_PKG_DIR" <<'JS'
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");
const dir = process.argv[2];
for (const name of fs.readdirSync(dir)) {
  if (!/\.(wasm|js|css)$/.test(name)) continue;
  const file = path.join(dir, name);
  const done = (suffix) => fs.existsSync(file + suffix) && fs.statSync(file + suffix).mtimeMs >= fs.statSync(file).mtimeMs;
  if (done(".br") && done(".gz")) continue;
  const data = fs.readFileSync(file);
  const br = zlib.brotliCompressSync(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } });
  fs.writeFileSync(path.join(dir, `${name}.br`), br);
  fs.writeFileSync(path.join(dir, `${name}.gz`), zlib.gzipSync(data, { level: 6 }));
}
JS
}

# The front end alone (WASM, JS, CSS), e.g. `leptos_build_frontend --release`.
leptos_build_frontend() {
  if is_release "$@"; then
    release_front_end "$@"
    return
  fi
  case "$(wasm_mode)" in
    rustup) cargo leptos build --frontend-only $SPLIT "$@" ;;
    debian-web)
      RUSTUP_TOOLCHAIN=debian-web RUSTC_BOOTSTRAP=1 \
        cargo leptos build --frontend-only $SPLIT --lib-cargo-args=-Zbuild-std=std,panic_abort "$@"
      ;;
    *) die "no toolchain can build the WASM front end: run scripts/bootstrap" ;;
  esac
}

# `cargo leptos watch` (the development server) with the chosen toolchain.
leptos_watch() {
  case "$(wasm_mode)" in
    rustup) cargo leptos watch $SPLIT "$@" ;;
    debian-web)
      RUSTUP_TOOLCHAIN=debian-web RUSTC_BOOTSTRAP=1 \
        cargo leptos watch $SPLIT --lib-cargo-args=-Zbuild-std=std,panic_abort "$@"
      ;;
    *) die "no toolchain can build the WASM front end: run scripts/bootstrap" ;;
  esac
}

# wasm-opt (binaryen from npm) for release builds: Debian's binaryen is too old.
use_wasm_opt() {
  export PATH="$ROOT/end2end/node_modules/binaryen/bin:$PATH"
}

# A TCP port nobody listens on right now.
free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Starts a private PostgreSQL server (the machine's own binaries) on a free port, in a fresh
# data folder, and exports TEST_POSTGRES_URL for the tests. Stopped and deleted by pg_stop.
pg_start() {
  local postgres bindir port
  postgres=$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n 1)
  [ -n "$postgres" ] || postgres=$(command -v postgres || true)
  [ -n "$postgres" ] || die "no PostgreSQL server binaries: run scripts/bootstrap"
  bindir=$(dirname "$postgres")
  port=$(free_port)
  # PostgreSQL refuses to run as root: run it as the postgres user then.
  PG_AS=()
  PG_BINDIR=$bindir
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/billing-pg.XXXXXX")
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    PG_AS=(runuser -u postgres --)
  fi
  "${PG_AS[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -n 5 "$PG_DIR/initdb.log")"
  "${PG_AS[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null ||
    die "PostgreSQL did not start: $(tail -n 5 "$PG_DIR/server.log")"
  export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on port $port"
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  "${PG_AS[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=
}

# Starts a real SMTP server (scripts/smtp-server: Debian's aiosmtpd) on a free port that takes
# mail from a client that logs in, keeps it in a fresh Maildir, and exports TEST_SMTP_URL and
# TEST_MAILDIR for the tests. Stopped and deleted by smtp_stop.
smtp_start() {
  local port
  port=$(free_port)
  SMTP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/billing-smtp.XXXXXX")
  SMTP_PASSWORD_FOR_TESTS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  "$ROOT/scripts/smtp-server" 127.0.0.1 "$port" "$SMTP_DIR/maildir" billing-tests "$SMTP_PASSWORD_FOR_TESTS" \
    >"$SMTP_DIR/server.log" 2>&1 &
  SMTP_PID=$!
  for _ in $(seq 100); do
    grep -q '^listening' "$SMTP_DIR/server.log" 2>/dev/null && break
    kill -0 "$SMTP_PID" 2>/dev/null || die "the SMTP server did not start: $(tail -n 5 "$SMTP_DIR/server.log")"
    sleep 0.1
  done
  grep -q '^listening' "$SMTP_DIR/server.log" || die "the SMTP server did not start in 10 s"
  export TEST_SMTP_URL="smtp://billing-tests:$SMTP_PASSWORD_FOR_TESTS@127.0.0.1:$port"
  export TEST_MAILDIR="$SMTP_DIR/maildir"
  say "SMTP server (aiosmtpd) on port $port"
}

smtp_stop() {
  [ -n "${SMTP_DIR:-}" ] || return 0
  kill "$SMTP_PID" 2>/dev/null || true
  wait "$SMTP_PID" 2>/dev/null || true
  rm -rf "$SMTP_DIR"
  SMTP_DIR=
}
