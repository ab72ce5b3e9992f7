#!/usr/bin/env bash
# Inspects a built vigil .deb: lists it, checks that every file an installation needs is in
# it with the right mode, that the maintainer scripts were completed, that the packaged
# binary is stripped and (under qemu for arm64) refuses the packaged config template until
# it is filled in and generates exactly the packaged completions and man pages, and that
# systemd finds nothing wrong with the unit as installed.
# Usage: deploy/check-deb.sh path/to/vigil_*.deb
set -euo pipefail
deb=${1:?usage: deploy/check-deb.sh path/to/vigil_VERSION_ARCH.deb}
fail() { echo "check-deb: FAIL ($deb): $*" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

echo "$deb: $(stat -c %s "$deb") bytes"
dpkg-deb --field "$deb" Package Version Architecture Installed-Size Depends
dpkg-deb --contents "$deb"
echo
listing=$(dpkg-deb --contents "$deb" | awk '{print $1, $NF}')

# mode and path of everything an installation needs
unit_dir=$(dpkg-deb --contents "$deb" | awk '{print $NF}' | grep -E '/systemd/system/vigil\.service$' |
  sed 's|/vigil\.service$||') || fail "no systemd unit vigil.service"
for want in \
  "-rwxr-xr-x ./usr/bin/vigil" \
  "-rw-r--r-- ./etc/vigil/vigil.toml" \
  "-rw-r--r-- $unit_dir/vigil.service" \
  "-rw-r--r-- ./usr/lib/sysusers.d/vigil.conf" \
  "-rw-r--r-- ./usr/lib/udev/rules.d/60-vigil.rules" \
  "-rw-r--r-- ./usr/share/doc/vigil/README.md" \
  "-rw-r--r-- ./usr/share/bash-completion/completions/vigil" \
  "-rw-r--r-- ./usr/share/zsh/vendor-completions/_vigil" \
  "-rw-r--r-- ./usr/share/fish/vendor_completions.d/vigil.fish" \
  "-rw-r--r-- ./usr/share/man/man1/vigil.1.gz"; do
  grep -qxF -- "$want" <<<"$listing" || fail "missing: $want"
done

# The model and the DBC are packaged as soon as the repository has them.
repo=$(cd "$(dirname "$0")/.." && pwd)
for file in "$repo"/models/*.onnx "$repo"/deploy/dbc/*.dbc; do
  [ -e "$file" ] || continue
  case $file in
    *.onnx) want=./usr/share/vigil/models/$(basename "$file") ;;
    *) want=./usr/share/vigil/dbc/$(basename "$file") ;;
  esac
  grep -q " $want\$" <<<"$listing" ||
    fail "missing $want: add its asset line in cli/Cargo.toml [package.metadata.deb]"
done

dpkg-deb --raw-extract "$deb" "$root"
# test.sh packages with --no-strip: the binary ships as Cargo built it, stripped by the
# release profile (strip = true in Cargo.toml), and that is checked here.
kind=$(file -b "$root/usr/bin/vigil")
[[ $kind == *", stripped"* ]] || fail "/usr/bin/vigil is not stripped: $kind"
grep -qx /etc/vigil/vigil.toml "$root/DEBIAN/conffiles" || fail "vigil.toml is not a conffile"
grep -q 'systemd-sysusers vigil.conf' "$root/DEBIAN/postinst" || fail "postinst does not create the user"
grep -q 'deb-systemd-helper' "$root/DEBIAN/postinst" || fail "postinst lacks the systemd unit snippets"
if grep -q '#DEBHELPER#' "$root"/DEBIAN/post* "$root"/DEBIAN/pre* 2>/dev/null; then
  fail "a maintainer script still holds #DEBHELPER#"
fi

# The packaged sysusers.d file makes the user and every group the unit asks for.
users=$(mktemp -d)
mkdir -p "$users/etc" "$users/usr/lib/sysusers.d"
cp "$root/usr/lib/sysusers.d/vigil.conf" "$users/usr/lib/sysusers.d/"
systemd-sysusers --root="$users" vigil.conf 2>/dev/null
grep -q '^vigil:x:[0-9]*:[0-9]*:Vigil edge agent:/var/lib/vigil:/usr/sbin/nologin$' "$users/etc/passwd" ||
  fail "sysusers.d does not create the vigil user"
groups=$(sed -n 's/^SupplementaryGroups=//p' "$root/${unit_dir#./}/vigil.service")
[ -n "$groups" ] || fail "the unit has no SupplementaryGroups="
for group in $groups vigil; do
  grep -q "^$group:" "$users/etc/group" || fail "sysusers.d does not create group $group"
done
rm -rf "$users"

# The packaged binary runs on its architecture and prints the packaged config.
case $(dpkg-deb --field "$deb" Architecture) in
  arm64) run=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
  amd64) run=() ;;
  *) fail "unexpected architecture" ;;
esac
vigil=("${run[@]}" "$root/usr/bin/vigil")

# /etc/vigil/vigil.toml is the real-truck template; the packaged binary reads all of it (an
# unknown key would be named first) and stops at the first line still to fill in.
cmp -s "$repo/deploy/vigil.toml" "$root/etc/vigil/vigil.toml" ||
  fail "/etc/vigil/vigil.toml is not deploy/vigil.toml"
code=0
refusal=$("${vigil[@]}" check-config "$root/etc/vigil/vigil.toml" 2>&1) || code=$?
if [ "$code" -ne 2 ] || [[ $refusal != *"key \`vehicle.id\`"* ]]; then
  fail "the unfilled template should be refused (exit 2) at vehicle.id; got exit $code: $refusal"
fi

# The completions and man pages are the packaged binary's own, the man pages gzipped.
generated=$(mktemp -d)
"${vigil[@]}" generate completions bash | cmp -s - "$root/usr/share/bash-completion/completions/vigil" ||
  fail "the bash completion is not what the packaged vigil generates"
"${vigil[@]}" generate completions zsh | cmp -s - "$root/usr/share/zsh/vendor-completions/_vigil" ||
  fail "the zsh completion is not what the packaged vigil generates"
"${vigil[@]}" generate completions fish | cmp -s - "$root/usr/share/fish/vendor_completions.d/vigil.fish" ||
  fail "the fish completion is not what the packaged vigil generates"
"${vigil[@]}" generate man "$generated" 2>/dev/null
for page in "$generated"/*.1; do
  packaged="$root/usr/share/man/man1/$(basename "$page").gz"
  [ -e "$packaged" ] || fail "missing man page /usr/share/man/man1/$(basename "$page").gz"
  gzip -dc "$packaged" | cmp -s - "$page" || fail "$(basename "$page") is not what the packaged vigil generates"
done
pages=$(find "$generated" -name '*.1' | wc -l)
[ "$(find "$root/usr/share/man/man1" -name '*.1.gz' | wc -l)" -eq "$pages" ] ||
  fail "the package has man pages the packaged vigil does not generate"
rm -rf "$generated"
echo "check-deb: template refused until filled in; completions and $pages man pages are the binary's own"

# systemd's own check of the unit, inside the package's tree (so ExecStart= resolves to the
# packaged binary), with this machine's units beside it for the targets it refers to. Any
# warning counts as a failure.
mkdir -p "$root/usr/lib/systemd/system"
cp -rn /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
# ExecReload= runs /bin/kill from procps, a dependency of the package: this machine's copy
# stands in for it in the tree.
grep -q ', procps' <<<"$(dpkg-deb -f "$deb" Depends)" || fail "the package does not depend on procps (ExecReload= runs /bin/kill)"
install -D -m 0755 /bin/kill "$root/bin/kill"
verify=$(systemd-analyze verify --root="$root" vigil.service 2>&1) ||
  fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify warns: $verify"
echo "check-deb: $deb ok"
