# Sourced by packaging/test-deb*.sh: a clean Debian 12 root to install the package into.
#
#   debroot_extract ARCH INCLUDE ROOT   a fresh bookworm root (debootstrap --variant=minbase,
#                                       plus the comma-separated INCLUDE packages) at ROOT; the
#                                       pristine root is made once and cached as a tarball in
#                                       ~/.cache/hearth/debroot/. A foreign ARCH (arm64 on an
#                                       amd64 host) runs under qemu-user-static via binfmt_misc,
#                                       which this enables.
#   debroot_mount ROOT / debroot_umount ROOT   proc, sys, dev for chrooted installs.
# Callers define fail() and step().

debroot_binfmt() {  # debroot_binfmt ARCH: foreign binaries run through qemu-user-static
  local arch=$1 qemu
  [ "$arch" = "$(dpkg --print-architecture)" ] && return 0
  case "$arch" in arm64) qemu=aarch64 ;; *) fail "no qemu mapping for $arch" ;; esac
  command -v "qemu-$qemu-static" >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support >&2
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e "/proc/sys/fs/binfmt_misc/qemu-$qemu" ] || update-binfmts --enable "qemu-$qemu" >&2
  grep -q enabled "/proc/sys/fs/binfmt_misc/qemu-$qemu" || fail "binfmt_misc qemu-$qemu is not enabled"
}

debroot_extract() {
  local arch=$1 include=$2 root=$3
  local cache=$HOME/.cache/hearth/debroot
  local pristine=$cache/bookworm-$arch${include:+-${include//,/-}}.tar
  debroot_binfmt "$arch"
  if [ ! -f "$pristine" ]; then
    step "debootstrap bookworm $arch (once; cached in $cache)"
    mkdir -p "$cache"
    local fresh=$root.fresh
    debootstrap --arch "$arch" --variant=minbase ${include:+--include="$include"} bookworm "$fresh" \
      >"$root.debootstrap.log" 2>&1 || { tail -20 "$root.debootstrap.log" >&2; fail "debootstrap"; }
    tar -C "$fresh" -cf "$pristine.tmp" . && mv "$pristine.tmp" "$pristine"
    rm -rf "$fresh"
  fi
  mkdir -p "$root"
  tar -C "$root" -xf "$pristine"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
}

debroot_mount() {
  local root=$1
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  mount --bind /dev/pts "$root/dev/pts"
  mount -t sysfs sys "$root/sys"
}

debroot_umount() {
  local root=$1 m
  for m in proc sys dev/pts dev; do umount -l "$root/$m" 2>/dev/null || true; done
}
