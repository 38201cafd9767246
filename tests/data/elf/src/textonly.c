// No program section: PREVAIL-style verifier test objects put their functions
// in .text; each is offered as a program (of a type the caller chooses).
#include <linux/bpf.h>

int first(void *ctx)
{
	return 1;
}

int second(void *ctx)
{
	return 2;
}
