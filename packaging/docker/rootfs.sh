#!/bin/sh
# The container's runtime stage: gathers into ROOT exactly what hearth needs at run time, for
# an image built FROM scratch (no shell, no package manager: ~60 MB instead of ~140-160 MB on
# a Debian slim base, whose arm64 build alone is 100 MB).
#   rootfs.sh ROOT      (run in a Debian stage that has hearth in /usr/bin and its libraries)
# - hearth and every shared library it loads (the loader's own list, symlinks kept), plus the
#   C and C++ runtime libraries that ONNX Runtime (loaded at run time from the models folder
#   for text to speech) links;
# - espeak-ng's phoneme data (text to speech) and the time zones (TZ=Europe/Berlin works);
# - /etc/passwd and /etc/group with root and hearth (10001), /etc/nsswitch.conf, a /tmp, and
#   /var/lib/hearth owned by hearth.
set -eu
root=$1
triple=$(gcc -dumpmachine 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || true)
[ -n "$triple" ] || triple=$(ls -d /usr/lib/*-linux-gnu | head -n 1 | xargs basename)
lib=/usr/lib/$triple
mkdir -p "$root"
# Debian 12 is merged-/usr: /lib and /lib64 are symlinks into /usr, and the loader lists
# libraries by those names. Make the same links first, so files land in /usr.
for link in /lib /lib64; do
  if [ -L "$link" ]; then
    mkdir -p "$root$(readlink -f "$link")"
    cp -a "$link" "$root$link"
  fi
done

copy() {  # copy PATH...: the file at its real folder and, for a symlink, what it points to
  for f in "$@"; do
    [ -e "$f" ] || { echo "rootfs: $f is missing" >&2; exit 1; }
    dir=$(cd "$(dirname "$f")" && pwd -P)
    mkdir -p "$root$dir"
    cp -a "$dir/$(basename "$f")" "$root$dir/"
    if [ -L "$dir/$(basename "$f")" ]; then copy "$(readlink -f "$f")"; fi
  done
}

copy /usr/bin/hearth
# The loader resolves the full list (libespeak-ng's own audio libraries included).
for so in $(ldd /usr/bin/hearth | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }'); do
  copy "$so"
done
# ONNX Runtime's own needs (dlopen'd from the volume, so not in hearth's list).
for so in libstdc++.so.6 libgcc_s.so.1 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 \
          libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
  [ ! -e "$lib/$so" ] || copy "$lib/$so"
done
mkdir -p "$root$lib" && cp -a "$lib/espeak-ng-data" "$root$lib/"
[ ! -d /usr/share/zoneinfo ] || { mkdir -p "$root/usr/share" && cp -a /usr/share/zoneinfo "$root/usr/share/"; }

mkdir -p "$root/etc" "$root/tmp" "$root/var/lib/hearth/models"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nhearth:x:10001:10001:Hearth:/var/lib/hearth:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nhearth:x:10001:\n' >"$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
chown -R 10001:10001 "$root/var/lib/hearth"
chmod 0750 "$root/var/lib/hearth" "$root/var/lib/hearth/models"
