#!/usr/bin/env bash
# make install into a temporary PREFIX, then: every part is in place, the man page has every
# subcommand, the installed binary finds its data and the shipped pair relative to itself (also
# after the tree is moved), and make uninstall removes every installed file.
#   install.sh SOURCE_DIR BUILD_DIR WITH_MAN(ON|OFF)
set -euo pipefail
root=$1 build=$2 with_man=$3
tmp=$(realpath "$(mktemp -d)")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install: FAIL: $*"; exit 1; }
prefix=$tmp/prefix

make -s -C "$root" install BUILD="$build" PREFIX="$prefix" JOBS=1 > "$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "make install"; }
for f in bin/dapx share/dapx/models/target/config.json share/dapx/models/draft/model.safetensors \
         share/dapx/data/tokenizers/qwen2/tokenizer.json share/dapx/data/eval/longbench.json \
         share/dapx/data/corpus_en.txt share/doc/dapx/LICENSE share/doc/dapx/NOTICE; do
  [ -f "$prefix/$f" ] || fail "$f was not installed"
done
if [ "$with_man" = ON ]; then
  man=$prefix/share/man/man1/dapx.1
  [ -f "$man" ] || fail "no man page"
  for sub in $("$prefix/bin/dapx" --help | sed -n '/^Subcommands:/,$p' | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'); do
    grep -q "^\.SS dapx $sub\$" "$man" || fail "the man page has no section for 'dapx $sub'"
  done
fi

# A moved copy of the tree: the binary looks next to itself, not in the build tree.
cp -a "$prefix" "$tmp/moved"
version=$("$tmp/moved/bin/dapx" --version)
grep -qxF "data: $tmp/moved/share/dapx/data" <<< "$version" || fail "data dir: $version"
grep -qxF "default models: $tmp/moved/share/dapx/models" <<< "$version" || fail "models: $version"
# The demo without --model runs the installed default pair and answers.
"$tmp/moved/bin/dapx" demo --task niah_single_1 --length 640 --budget 128 --methods full,speckv-pc \
  --seed 11 --samples 1 --threads 1 > "$tmp/demo.txt" 2>&1 || { cat "$tmp/demo.txt"; fail "demo"; }
grep -qF "models: the shipped default pair, $tmp/moved/share/dapx/models/target" "$tmp/demo.txt" ||
  { cat "$tmp/demo.txt"; fail "demo did not use the installed pair"; }
grep -Eq "speckv-pc +6874424\. +yes" "$tmp/demo.txt" || { cat "$tmp/demo.txt"; fail "demo answer"; }

make -s -C "$root" uninstall PREFIX="$prefix" > "$tmp/uninstall.log" 2>&1 ||
  { cat "$tmp/uninstall.log"; fail "make uninstall"; }
left=$(find "$prefix" -type f)
[ -z "$left" ] || fail "left after make uninstall: $left"
[ ! -e "$prefix/share/dapx" ] || fail "share/dapx is still there after make uninstall"
echo "install: ok"
