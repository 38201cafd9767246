#!/bin/sh
# Rebuild the example objects from their C sources. Needs clang and libbpf's
# headers; on Debian/Ubuntu: apt-get install clang-19 libbpf-dev
set -e
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
for src in *.c; do
	case "$src" in
	xdp_filter.c) cpu=-mcpu=v3 ;;  # tests/test_coverage.py knows its line table at v3
	struct_ops_*.c) cpu=-mcpu=v3 ;;  # the struct_ops tests load these as built here
	iter_*.c) cpu=-mcpu=v3 ;;  # kfuncs and iterators, as the kernel selftests build them
	fentry_*.c) cpu=-mcpu=v3 ;;  # tests/progs/test_tracing_btf.py loads it as built here
	netfilter_*.c) cpu=-mcpu=v3 ;;  # tests/progs/test_netfilter.py loads it as built here
	*) cpu= ;;
	esac
	$CLANG -O2 -g -target bpf $cpu -I"/usr/include/$(uname -m)-linux-gnu" -c "$src" -o "${src%.c}.o"
	echo "built ${src%.c}.o"
done
# The `pyebpf demo` command ships the counter inside the package.
cp xdp_counter.o ../src/pyebpf/demo/xdp_counter.o
