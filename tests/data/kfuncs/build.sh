#!/bin/sh
# Rebuild the kfunc test objects (Debian: apt-get install clang-19 libbpf-dev).
set -e
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
for src in *.c; do  # every object here: cast_kfuncs, dynptr_kfuncs, obj_new ...
	f=${src%.c}
	$CLANG -O2 -g -target bpf -mcpu=v3 -I"/usr/include/$(uname -m)-linux-gnu" -c $f.c -o $f.o
done
