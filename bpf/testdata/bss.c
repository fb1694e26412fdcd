// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Hostile: a writable global (.bss), shared by every run at once. */
#include "ferry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u64 runs;

FERRY_EXTENSION
int bss(struct ferry_ctx *ctx)
{
	ctx->out[0] = ++runs;
	return 0;
}
