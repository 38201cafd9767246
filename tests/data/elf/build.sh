#!/bin/sh
# Rebuild the test objects (Debian: apt-get install clang-19 libbpf-dev).
set -e
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
INC="-I/usr/include/$(uname -m)-linux-gnu"
for f in globals calls global_func optional tailcalls core core_target core_missing ksym bad; do
	$CLANG -O2 -g -target bpf $INC -c src/$f.c -o $f.o
done
# The legacy object is built without BTF, as the old samples were.
$CLANG -O2 -target bpf $INC -c src/legacy_maps.c -o legacy_maps.o
# A big-endian object, which the loader must refuse cleanly.
$CLANG -O2 -target bpfeb $INC -c src/calls.c -o calls_be.o
$CLANG -O2 -target bpf $INC -c src/iproute2.c -o iproute2.o
$CLANG -O2 -g -target bpf $INC -c src/textonly.c -o textonly.o
