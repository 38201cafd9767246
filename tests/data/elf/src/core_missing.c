// A target BTF for core.c in which struct pair has no 'second' ("an older kernel").
#include <linux/bpf.h>

struct pair {
	int first;
};

enum color { RED = 1, GREEN = 5 };

struct pair p;
enum color c;
