// A target BTF for core.c: struct pair with another layout (a "newer kernel").
#include <linux/bpf.h>

struct pair {
	long extra;
	int first;
	long second;
	unsigned int flag : 3;
};

enum color { GREEN = 7, RED = 1 };

struct pair p;
enum color c;
