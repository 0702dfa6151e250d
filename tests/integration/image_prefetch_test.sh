#!/usr/bin/env bash
# Cold start without a trace run (issue 15, tests 1 and 2):
#  1. the default prefetch list: an image whose entrypoint is a dynamically
#     linked binary (built here) with libraries found through DT_RUNPATH
#     $ORIGIN (transitively) and through the image's ld.so.conf names
#     exactly the binary, its interpreter and its libraries; a script
#     entrypoint names its interpreter too. The image runs in containerd,
#     and its layers are prefetched from that list;
#  2. readahead: a sequential read of a 32 MiB file in a lazy layer makes
#     at most 1/4 of the range requests it makes with readahead off.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images_lib.sh"
lazy_stack_setup ipf

step "build a program with four libraries and a two-layer image around it"
src=$work/src base=$work/base app=$work/app
mkdir -p "$src" "$base/usr/lib/x86_64-linux-gnu" "$base/lib64" "$base/etc/ld.so.conf.d" \
  "$app/app/bin" "$app/app/lib" "$app/usr/local/lib/offtest" "$app/etc/ld.so.conf.d" "$app/data"
cat > "$src/b.c" <<'C'
int b(void) { return 2; }
C
cat > "$src/a.c" <<'C'
int b(void);
int a(void) { return 40 + b(); }
C
cat > "$src/cc.c" <<'C'
const char *cc(void) { return "offcore prefetch"; }
C
cat > "$src/hello.c" <<'C'
#include <stdio.h>
int a(void);
const char *cc(void);
int main(int argc, char **argv) { printf("%s %d\n", cc(), a()); return 0; }
C
gcc -shared -fPIC -o "$app/app/lib/libb.so" "$src/b.c"
# liba finds libb next to itself (DT_RUNPATH $ORIGIN): a transitive library.
gcc -shared -fPIC -o "$app/app/lib/liba.so" "$src/a.c" -L"$app/app/lib" -lb -Wl,-rpath,'$ORIGIN'
# libcc is found through the image's ld.so.conf (an include of conf.d).
gcc -shared -fPIC -o "$app/usr/local/lib/offtest/libcc.so" "$src/cc.c"
gcc -o "$app/app/bin/hello" "$src/hello.c" -L"$app/app/lib" -L"$app/usr/local/lib/offtest" -la -lcc \
  -Wl,-rpath,'$ORIGIN/../lib' -Wl,--enable-new-dtags
printf '#!/app/bin/hello\n' > "$app/app/run.sh"; chmod 755 "$app/app/run.sh"
echo /usr/local/lib/offtest > "$app/etc/ld.so.conf.d/offtest.conf"
# The base layer: the host's loader and libc, laid out like Debian (merged /usr).
ld_real=$(readlink -f /lib64/ld-linux-x86-64.so.2)
cp "$ld_real" "$base/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
cp "$(readlink -f /lib/x86_64-linux-gnu/libc.so.6)" "$base/usr/lib/x86_64-linux-gnu/libc.so.6"
ln -s ../usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$base/lib64/ld-linux-x86-64.so.2"
ln -s usr/lib "$base/lib"
echo 'include /etc/ld.so.conf.d/*.conf' > "$base/etc/ld.so.conf"
echo /usr/lib/x86_64-linux-gnu > "$base/etc/ld.so.conf.d/x86_64-linux-gnu.conf"
# The loader's cache of the whole image, as an image build's ldconfig makes it.
merged=$work/merged; mkdir -p "$merged"
cp -a "$base/." "$merged/"; cp -a "$app/." "$merged/"
ldconfig -r "$merged"
mkdir -p "$app/etc"; cp "$merged/etc/ld.so.cache" "$app/etc/ld.so.cache"
# ($ORIGIN needs /proc/self/exe.)
mkdir -p "$merged/proc"
out=$(unshare --mount --pid --fork --mount-proc="$merged/proc" chroot "$merged" /app/bin/hello)
[ "$out" = "offcore prefetch 42" ] || fail "the test program does not run in its rootfs: $out"
head -c $((32 << 20)) /dev/urandom > "$app/data/big"
big_sum=$(sha256sum "$app/data/big" | cut -d' ' -f1)
python3 "$IMG_DIR/make_dir_image.py" "$work/layout" bin '{"Entrypoint":["/app/bin/hello"],"Env":["PATH=/app/bin"]}' \
  "$base" "$app"
python3 "$IMG_DIR/make_dir_image.py" "$work/layout" script '{"Cmd":["/app/run.sh"]}' "$base" "$app"
for t in bin script; do skopeo copy -q --dest-tls-verify=false "oci:$work/layout:$t" "docker://$REG/pf:$t"; done

step "convert: the default prefetch list names the binary, its loader and its libraries"
oc image convert "$REG/pf:bin" --to registry --dest "$REG/pf:bin-lazy" --plain-http --catalog "$CAT" > "$work/convert.txt"
cat "$work/convert.txt"
grep -q "default prefetch list (from the image config, no trace run): 6 files" "$work/convert.txt" ||
  fail "convert did not report the derived list"
oc image convert "$REG/pf:script" --to registry --dest "$REG/pf:script-lazy" --plain-http --catalog "$CAT" >/dev/null
L=/usr/lib/x86_64-linux-gnu
want_bin=$(printf '%s\n' /app/bin/hello $L/ld-linux-x86-64.so.2 /app/lib/liba.so /app/lib/libb.so \
  /usr/local/lib/offtest/libcc.so $L/libc.so.6 | sort | paste -sd,)
files() { oc image list --catalog "$CAT" --json | jq -r --arg r "$REG/pf:$1" '.[] | select(.ref == $r) | .start_files[]'; }
got=$(files bin | sort | paste -sd,)
[ "$got" = "$want_bin" ] || fail "binary entrypoint: list is $got, expected $want_bin"
[ "$(files bin | head -2 | paste -sd,)" = "/app/bin/hello,$L/ld-linux-x86-64.so.2" ] ||
  fail "the list does not start with the binary and its interpreter: $(files bin | paste -sd,)"
got=$(files script | sort | paste -sd,)
want_script=$(printf '%s\n' /app/run.sh /app/bin/hello $L/ld-linux-x86-64.so.2 /app/lib/liba.so /app/lib/libb.so \
  /usr/local/lib/offtest/libcc.so $L/libc.so.6 | sort | paste -sd,)
[ "$got" = "$want_script" ] || fail "script entrypoint: list is $got, expected $want_script"
[ "$(files script | head -2 | paste -sd,)" = "/app/run.sh,/app/bin/hello" ] ||
  fail "the script's list does not name its interpreter second: $(files script | paste -sd,)"
jq -e '[.layers[] | .start_ranges | length] | all(. > 0)' "$CAT/catalog.json" >/dev/null ||
  fail "a layer has no start ranges in the catalog"

step "the lazy image runs, and its layers were prefetched from the derived list"
$CTR image pull --plain-http --snapshotter offcore "$REG/pf:bin-lazy" >/dev/null
out=$(timeout 120 $CTR run --rm --snapshotter offcore "$REG/pf:bin-lazy" pf$ID)
[ "$out" = "offcore prefetch 42" ] || fail "the container printed '$out'"
oc image layers --node "$N" --json > "$work/layers.json"
jq -e '[.layers[] | .prefetch_list] | all(. == "derived")' "$work/layers.json" >/dev/null ||
  fail "layers were not prefetched from the derived list: $(jq -c '[.layers[].prefetch_list]' "$work/layers.json")"
jq -e '[.layers[] | .stats.prefetched] | add > 0' "$work/layers.json" >/dev/null || fail "nothing was prefetched"

step "readahead: a sequential read of 32 MiB takes at most 1/4 of the requests"
$CTR image rm --sync "$REG/pf:bin-lazy" >/dev/null
snapshotter_stop offcore
umount_below "$SN_DIR"
# requests FLAGS...: attaches the image cold with FLAGS, reads /data/big
# through the top layer's EROFS, prints its layer's range requests.
requests() {
  umount_below "$work/mnt"
  oc dpu service del --name "$N" --service images --force >/dev/null 2>&1 || true
  umount_below "/run/offcore/$N/images"; rm -rf "/var/cache/offcore/$N"
  oc image attach "$REG/pf:bin" --node "$N" --catalog "$CAT" --plain-http --no-prefetch "$@" --json \
    > "$work/attach.json"
  local top id
  top=$(jq -r '.[1].file' "$work/attach.json"); id=$(jq -r '.[1].id' "$work/attach.json")
  mkdir -p "$work/mnt/top"; mount -t erofs -o ro "$top" "$work/mnt/top"
  sync; echo 3 > /proc/sys/vm/drop_caches
  [ "$(sha256sum "$work/mnt/top/data/big" | cut -d' ' -f1)" = "$big_sum" ] || fail "wrong bytes in /data/big ($*)"
  oc image layers --node "$N" --json | jq -r --arg id "$id" '.layers[] | select(.id == $id) | .stats.range_requests'
}
off=$(requests --no-readahead)
on=$(requests)
echo "range requests for 32 MiB: readahead off $off, on $on"
assert_cmp "$off" ">=" 128 "with readahead off every 256 KiB chunk is a request"
assert_cmp "$((on * 4))" "<=" "$off" "readahead made $on requests against $off"
