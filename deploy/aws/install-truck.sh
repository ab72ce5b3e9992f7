#!/bin/sh
# Installs one truck's identity for the Vigil agent. provision-truck.sh copies this file as
# install.sh beside the truck's vigil.toml and certs/. It puts the config in /etc/vigil, the
# CA and the truck's certificate in /etc/vigil/certs, and the private key there too, owned
# by the agent's user and readable by no one else; then checks the config as the agent's
# user and (re)starts the service.
#
# Usage, as root on the gateway once the vigil package is installed:  sh install.sh
#        sh install.sh --root DIR
# --root installs under DIR instead of /, for a staging tree or a test, as any user: the
# config's /etc/vigil and /var/lib/vigil paths are made to point under DIR, files get the
# agent's user as owner only when run as root where that user exists, the check runs as the
# caller, and no service is touched.
set -eu

# The key's mode: what the agent accepts (agent/src/uplink/tls.rs refuses a key that group
# or others may read) and the mode its refusal tells an operator to set.
# tests/system/provision.rs holds the two equal.
key_mode=0600
# The agent's user and group (the package's /usr/lib/sysusers.d/vigil.conf).
user=vigil

die() {
  echo "install.sh: $*" >&2
  exit 1
}
usage="usage: sh install.sh [--root DIR]"

root=""
case $# in
  0) ;;
  2)
    [ "$1" = --root ] || die "$usage"
    root=$(cd "$2" && pwd) || die "--root $2: no such folder"
    ;;
  *) die "$usage" ;;
esac
cd "$(dirname "$0")"
for file in vigil.toml certs/AmazonRootCA1.pem certs/device.pem.crt certs/private.pem.key; do
  [ -r "$file" ] || die "$file is missing: run the install.sh that provision-truck.sh wrote, in its folder"
done
vigil=$(command -v vigil) || die "vigil is not on the PATH: install the vigil package first"

# Owners: the agent's user where there is one to give, else the caller (a staging tree).
owned=no
if [ "$(id -u)" -eq 0 ] && id "$user" >/dev/null 2>&1; then
  owned=yes
elif [ -z "$root" ]; then
  [ "$(id -u)" -eq 0 ] || die "run it as root (or stage the files with --root DIR)"
  die "there is no user $user: install the vigil package first"
else
  echo "install.sh: files under $root stay owned by $(id -un): not root, or no user $user here" >&2
fi
# install(1), giving the owner and group when that can be done.
put() {
  owner=$1 group=$2
  shift 2
  if [ "$owned" = yes ]; then install -o "$owner" -g "$group" "$@"; else install "$@"; fi
}

etc="$root/etc/vigil"
put root root -d -m 0755 "$etc"
put root "$user" -d -m 0750 "$etc/certs"
put root root -m 0644 vigil.toml "$etc/vigil.toml"
put root root -m 0644 certs/AmazonRootCA1.pem certs/device.pem.crt "$etc/certs/"
put "$user" "$user" -m "$key_mode" certs/private.pem.key "$etc/certs/"

if [ -n "$root" ]; then
  # systemd makes /var/lib/vigil (StateDirectory=) on a gateway; a staging tree needs its own.
  put "$user" "$user" -d -m 0700 "$root/var/lib/vigil"
  escaped=$(printf '%s' "$root" | sed 's/[&|\\]/\\&/g')
  sed -i -e "s|\"/etc/vigil/|\"$escaped/etc/vigil/|g" \
    -e "s|\"/var/lib/vigil/|\"$escaped/var/lib/vigil/|g" "$etc/vigil.toml"
  "$vigil" check-config "$etc/vigil.toml"
  echo "install.sh: staged under $root; no service started"
  exit 0
fi

# As the agent's user: it must be able to read every file the config names.
runuser -u "$user" -- "$vigil" check-config "$etc/vigil.toml"
systemctl enable vigil
systemctl restart vigil
echo "install.sh: vigil is running; see: systemctl status vigil; journalctl -u vigil -f"
