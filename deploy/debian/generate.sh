#!/usr/bin/env bash
# Writes what the Debian package installs beside the binary that is generated from the
# command line's own definition (`vigil generate`): the bash, zsh and fish completions, and
# the man pages (vigil.1 and one page per command, vigil-run.1 and so on). cargo-deb takes
# them from OUT (the asset lines in cli/Cargo.toml) and gzips the man pages; test.sh runs this
# before `cargo deb`. A build writes the files of the commands it has: the package's come from
# the gateway's build (`--no-default-features --features demo-broker`, without the lab's
# commands), whichever architecture it was built for.
# Usage: deploy/debian/generate.sh path/to/vigil OUT   (test.sh: target/release/vigil target/generated)
set -euo pipefail
vigil=${1:?usage: deploy/debian/generate.sh path/to/vigil OUT}
out=${2:?usage: deploy/debian/generate.sh path/to/vigil OUT}
rm -rf "$out"
mkdir -p "$out/completions" "$out/man"
"$vigil" generate completions bash >"$out/completions/vigil.bash"
"$vigil" generate completions zsh >"$out/completions/_vigil"
"$vigil" generate completions fish >"$out/completions/vigil.fish"
"$vigil" generate man "$out/man"
echo "generate: $(find "$out" -type f | wc -l) files in $out"
