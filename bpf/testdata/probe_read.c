// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Hostile: reads kernel memory with bpf_probe_read_kernel. */
#include "ferry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

FERRY_EXTENSION
int probe_read(struct ferry_ctx *ctx)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx->args[0]);
	ctx->out[0] = v;
	return 0;
}
