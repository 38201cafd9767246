#!/bin/sh
# Rebuild the pyebpf.testing test objects (Debian: apt-get install clang-19 libbpf-dev).
set -e
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
INC="-I/usr/include/$(uname -m)-linux-gnu"
for f in flows rejected; do
	$CLANG -O2 -g -target bpf $INC -c src/$f.c -o $f.o
done
