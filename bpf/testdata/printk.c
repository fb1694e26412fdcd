// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Hostile: writes to the trace pipe with bpf_trace_printk. */
#include "ferry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

FERRY_EXTENSION
int printk(struct ferry_ctx *ctx)
{
	bpf_printk("slot %u", ctx->slot);
	return 0;
}
