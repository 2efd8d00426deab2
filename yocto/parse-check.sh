#!/usr/bin/env bash
# Parse check for meta-hearth: `bitbake -p` with poky and the layers you give it, one run
# per MACHINE, in a throw-away build directory. Downloads nothing (BB_NO_NETWORK = "1",
# hearth comes from this checkout through externalsrc). See --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: yocto/parse-check.sh --poky DIR [options] [LAYER_DIR...]

Runs `bitbake -p` (parse only: no fetch, no compile) with poky's meta + meta-poky,
the LAYER_DIRs given (e.g. meta-clang, meta-lts-mixins, meta-raspberrypi, meta-tegra)
and yocto/meta-hearth from this checkout, once per --machine. hearth's source is this
checkout (externalsrc), so the hearth recipe is parsed for real instead of being skipped
for want of HEARTH_GIT_URL. Prints the git revision of poky and of every layer used, then
per machine the parse summary, the number of WARNING/ERROR lines, and which meta-hearth
recipes were skipped and why.

Options (environment variable in brackets):
  --poky DIR          poky checkout, branch scarthgap                       [POKY_DIR]
  --machine M         MACHINE to parse for; repeat for several              [MACHINES, space-separated]
                      (default: qemux86-64)
  --build-dir DIR     build directory (created; conf/ is rewritten each run) [BUILD_DIR]
                      (default: /var/tmp/hearth-yocto-parse)
  --source DIR        hearth checkout for EXTERNALSRC:pn-hearth             [HEARTH_SOURCE]
                      (default: the checkout this script is in). Its .git must be
                      writable by the user running bitbake (externalsrc writes a
                      temporary git index there)
  --graph             also run `bitbake -g hearth-image` per machine: resolves every
                      dependency of the image (still no fetch, no compile)
  --local-conf FILE   extra lines appended to local.conf (e.g. for Jetson/Pi settings)
  -h, --help          this text
  LAYER_DIR...        extra layers, in order                                 [EXTRA_LAYERS, space-separated]

Exit status: 0 when every `bitbake -p` (and -g with --graph) exited 0, 1 otherwise, 2 on
bad usage. bitbake refuses to run as root: run this as an ordinary user (e.g.
`runuser -u yocto -- yocto/parse-check.sh ...`) with the checkouts readable by it.

Example:
  yocto/parse-check.sh --poky /var/tmp/yocto/poky \
      --machine qemux86-64 --machine raspberrypi5 \
      /var/tmp/yocto/meta-clang /var/tmp/yocto/meta-lts-mixins /var/tmp/yocto/meta-raspberrypi
EOF
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POKY_DIR="${POKY_DIR:-}"
BUILD_DIR="${BUILD_DIR:-/var/tmp/hearth-yocto-parse}"
HEARTH_SOURCE="${HEARTH_SOURCE:-$(cd "$here/.." && pwd)}"
read -r -a machines <<<"${MACHINES:-}"
read -r -a layers <<<"${EXTRA_LAYERS:-}"
graph=0
extra_conf=""
machines_given=0

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --poky) POKY_DIR="$2"; shift 2 ;;
        --machine) [ "$machines_given" = 1 ] || machines=(); machines_given=1; machines+=("$2"); shift 2 ;;
        --build-dir) BUILD_DIR="$2"; shift 2 ;;
        --source) HEARTH_SOURCE="$2"; shift 2 ;;
        --graph) graph=1; shift ;;
        --local-conf) extra_conf="$2"; shift 2 ;;
        -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
        *) layers+=("$1"); shift ;;
    esac
done
[ ${#machines[@]} -gt 0 ] || machines=(qemux86-64)

if [ -z "$POKY_DIR" ] || [ ! -f "$POKY_DIR/oe-init-build-env" ]; then
    echo "need --poky DIR (or POKY_DIR): a poky checkout with oe-init-build-env" >&2; exit 2
fi
if [ "$(id -u)" = 0 ]; then
    echo "bitbake refuses to run as root; run this as an ordinary user" >&2; exit 2
fi
[ -z "$extra_conf" ] || [ -f "$extra_conf" ] || { echo "no such file: $extra_conf" >&2; exit 2; }
POKY_DIR="$(cd "$POKY_DIR" && pwd)"
# externalsrc hashes a git source tree with a temporary index inside its git directory.
gd="$(git -C "$HEARTH_SOURCE" rev-parse --absolute-git-dir 2>/dev/null || true)"
if [ -n "$gd" ] && [ ! -w "$gd" ]; then
    echo "$gd is not writable by $(id -un): externalsrc needs that (it runs git add with a" >&2
    echo "temporary index there). Clone the checkout as this user and pass --source CLONE." >&2
    exit 2
fi
HEARTH_SOURCE="$(cd "$HEARTH_SOURCE" && pwd)"
meta_hearth="$here/meta-hearth"
all_layers=("$POKY_DIR/meta" "$POKY_DIR/meta-poky")
for l in "${layers[@]}"; do
    [ -f "$l/conf/layer.conf" ] || { echo "not a layer (no conf/layer.conf): $l" >&2; exit 2; }
    all_layers+=("$(cd "$l" && pwd)")
done
all_layers+=("$meta_hearth")

# --- revisions ----------------------------------------------------------------------------
rev() {  # dir -> "sha (branch) [dirty]"
    local d="$1" sha br dirty=""
    sha="$(git -C "$d" rev-parse HEAD 2>/dev/null)" || { echo "not in git"; return; }
    br="$(git -C "$d" rev-parse --abbrev-ref HEAD 2>/dev/null)"
    [ -z "$(git -C "$d" status --porcelain --untracked-files=no -- . 2>/dev/null)" ] || dirty=" +local changes"
    echo "$sha ($br, $(git -C "$d" log -1 --format=%cs HEAD))$dirty"
}
echo "== revisions"
echo "poky            $(rev "$POKY_DIR")   [$POKY_DIR]"
printed="$POKY_DIR"
for l in "${all_layers[@]}"; do
    top="$(git -C "$l" rev-parse --show-toplevel 2>/dev/null || echo "$l")"
    case " $printed " in *" $top "*) continue ;; esac
    printed="$printed $top"
    printf '%-15s %s   [%s]\n' "$(basename "$l")" "$(rev "$l")" "$l"
done
echo "bitbake         $(PYTHONPATH="$POKY_DIR/bitbake/lib" python3 -c 'import bb; print(bb.__version__)')"
echo "hearth source   $(rev "$HEARTH_SOURCE")   [$HEARTH_SOURCE]"

# --- configuration ------------------------------------------------------------------------
mkdir -p "$BUILD_DIR/conf"
{
    echo '# Written by yocto/parse-check.sh'
    echo 'POKY_BBLAYERS_CONF_VERSION = "2"'
    echo 'BBPATH = "${TOPDIR}"'
    echo 'BBFILES ?= ""'
    echo 'BBLAYERS ?= " \'
    for l in "${all_layers[@]}"; do echo "  $l \\"; done
    echo '  "'
} >"$BUILD_DIR/conf/bblayers.conf"
{
    echo '# Written by yocto/parse-check.sh: parse only, never downloads.'
    echo 'DISTRO ?= "poky"'
    echo 'INIT_MANAGER = "systemd"'
    echo 'BB_NO_NETWORK = "1"'
    echo 'DL_DIR = "${TOPDIR}/downloads"'
    echo 'SSTATE_DIR = "${TOPDIR}/sstate-cache"'
    echo 'CONF_VERSION = "2"'
    echo 'PACKAGE_CLASSES ?= "package_ipk"'
    echo '# hearth from this checkout, so the recipe is parsed instead of skipped.'
    echo 'INHERIT += "externalsrc"'
    echo "EXTERNALSRC:pn-hearth = \"$HEARTH_SOURCE\""
    echo '# meta-raspberrypi: firmware licence (harmless elsewhere).'
    echo 'LICENSE_FLAGS_ACCEPTED += "synaptics-killswitch"'
    echo '# MACHINE, set per run'
    echo 'include conf/parse-check-machine.conf'
    if [ -n "$extra_conf" ]; then echo "# from $extra_conf"; cat "$extra_conf"; fi
} >"$BUILD_DIR/conf/local.conf"
# bitbake's own environment: oe-init-build-env, without letting it touch conf/.
set +u
# shellcheck disable=SC1091
. "$POKY_DIR/oe-init-build-env" "$BUILD_DIR" >/dev/null
set -u

# --- parse --------------------------------------------------------------------------------
status=0
for m in "${machines[@]}"; do
    echo
    echo "== MACHINE=$m: bitbake -p"
    printf 'MACHINE = "%s"\n' "$m" >"$BUILD_DIR/conf/parse-check-machine.conf"
    log="$BUILD_DIR/parse-$m.log"
    rc=0
    bitbake -p >"$log" 2>&1 || rc=$?
    grep -E '^(Parsing of|Summary:)' "$log" | sed 's/^/  /' || true
    echo "  exit $rc; $(grep -c '^WARNING:' "$log" || true) WARNING and $(grep -c '^ERROR:' "$log" || true) ERROR lines (log: $log)"
    grep -E '^(WARNING|ERROR):' "$log" | sed 's/^/    /' | head -40 || true
    [ "$rc" = 0 ] || status=1
    # The meta-hearth recipes: parsed and buildable, or skipped (and why).
    bitbake-layers show-recipes hearth hearth-model hearth-image 2>/dev/null \
        | grep -E '^(hearth|  )' | sed 's/^/  /' || true
    if [ "$graph" = 1 ]; then
        echo "== MACHINE=$m: bitbake -g hearth-image"
        glog="$BUILD_DIR/graph-$m.log"
        rc=0
        (cd "$BUILD_DIR" && bitbake -g hearth-image) >"$glog" 2>&1 || rc=$?
        echo "  exit $rc; $(grep -c '^WARNING:' "$glog" || true) WARNING and $(grep -c '^ERROR:' "$glog" || true) ERROR lines (log: $glog)"
        grep -E '^(WARNING|ERROR):' "$glog" | sed 's/^/    /' | head -40 || true
        if [ "$rc" = 0 ] && [ -f "$BUILD_DIR/pn-buildlist" ]; then
            mv "$BUILD_DIR/pn-buildlist" "$BUILD_DIR/pn-buildlist-$m"
            mv "$BUILD_DIR/task-depends.dot" "$BUILD_DIR/task-depends-$m.dot"
            echo "  hearth-image needs $(wc -l <"$BUILD_DIR/pn-buildlist-$m") recipes (list: $BUILD_DIR/pn-buildlist-$m)"
            # The toolchain the graph picked, as "recipe version file".
            grep -o 'label="\(rust-native\|cargo-native\|clang-native\|hearth\) do_compile\\n:[^\\]*\\n[^"]*' \
                "$BUILD_DIR/task-depends-$m.dot" | sed 's/^label="/    /; s/ do_compile\\n:/ /; s/\\n/ /' || true
        fi
        [ "$rc" = 0 ] || status=1
    fi
done
exit "$status"
