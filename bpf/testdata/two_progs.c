// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Hostile: two programs in one ELF. */
#include "ferry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

FERRY_EXTENSION
int first(struct ferry_ctx *ctx)
{
	return 0;
}

FERRY_EXTENSION
int second(struct ferry_ctx *ctx)
{
	return 1;
}
