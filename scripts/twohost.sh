#!/usr/bin/env bash
# Two "hosts" over one folder, for the tests marked `twohost`: sshd on 127.0.0.1 (a free port, a throwaway
# key) and the folder mounted twice through sshfs. Each mount has its own kernel and sshfs caches and no
# lock is shared between them, as between two nodes of a cluster on NFS/Lustre. The directory cache is
# kept to 1 s (NFS revalidates on open; sshfs would otherwise cache names for 20 s).
#
#   scripts/twohost.sh start   -> prints the two mount points (also in $MIHD_TWOHOST_DIR/mounts)
#   scripts/twohost.sh stop
# Needs root (apt-get for openssh-server, sshfs and fuse3 when missing; /dev/fuse).
set -euo pipefail
DIR="${MIHD_TWOHOST_DIR:-/tmp/mihd-twohost}"

die() { echo "twohost: $*" >&2; exit 1; }

install_missing() {
  local missing=()
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v sshfs >/dev/null || missing+=(sshfs)
  command -v fusermount3 >/dev/null || command -v fusermount >/dev/null || missing+=(fuse3)
  [ ${#missing[@]} = 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "needs root to install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || die "cannot install ${missing[*]}"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

unmount() {
  for m in "$DIR/a" "$DIR/b"; do
    # a mount whose sshfs died cannot even be stat'ed ("Transport endpoint is not connected"): /proc/mounts still lists it
    if mountpoint -q "$m" 2>/dev/null || grep -qs " $m fuse" /proc/mounts; then
      fusermount3 -uz "$m" 2>/dev/null || fusermount -uz "$m" 2>/dev/null || umount -l "$m" || true
    fi
  done
}

start() {
  [ "$(id -u)" = 0 ] || die "needs root (sshd, FUSE mounts)"
  install_missing
  [ -c /dev/fuse ] || die "/dev/fuse is missing: FUSE cannot work here"
  stop >/dev/null 2>&1 || true
  mkdir -p "$DIR/shared" "$DIR/a" "$DIR/b" /run/sshd
  chmod 700 "$DIR"
  rm -f "$DIR/hostkey" "$DIR/hostkey.pub" "$DIR/id" "$DIR/id.pub"
  ssh-keygen -q -t ed25519 -N '' -f "$DIR/hostkey"
  ssh-keygen -q -t ed25519 -N '' -f "$DIR/id"
  cp "$DIR/id.pub" "$DIR/authorized_keys"
  local port sshd
  port=$(free_port)
  sshd=$(command -v sshd || echo /usr/sbin/sshd)
  cat >"$DIR/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $DIR/hostkey
AuthorizedKeysFile $DIR/authorized_keys
PidFile $DIR/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
EOF
  "$sshd" -f "$DIR/sshd_config" -E "$DIR/sshd.log" || die "sshd did not start (see $DIR/sshd.log)"
  echo "$port" >"$DIR/port"
  for m in a b; do
    local ok=0
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      if sshfs "root@127.0.0.1:$DIR/shared" "$DIR/$m" -p "$port" \
          -o IdentityFile="$DIR/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
          -o BatchMode=yes -o LogLevel=ERROR -o dcache_timeout=1 -o reconnect 2>"$DIR/sshfs-$m.log"; then
        ok=1; break
      fi
      sleep 0.3
    done
    [ "$ok" = 1 ] || { stop >/dev/null 2>&1; die "sshfs mount $m failed: $(cat "$DIR/sshfs-$m.log")"; }
  done
  printf '%s\n%s\n' "$DIR/a" "$DIR/b" >"$DIR/mounts"
  cat "$DIR/mounts"
}

stop() {
  unmount
  if [ -f "$DIR/sshd.pid" ]; then
    kill "$(cat "$DIR/sshd.pid")" 2>/dev/null || true
    rm -f "$DIR/sshd.pid"
  fi
  rm -f "$DIR/mounts"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
