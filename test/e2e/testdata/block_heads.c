// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A user's extension, built the way README.md says: it sums the first u64
 * of every block in the range (out[0]) and counts the blocks (out[1]).
 */
#include "ferry.h"

struct heads {
	__u8 *data;
	__u32 blocks;
	__u32 block_size;
	__u64 sum;
};

static long head(__u32 i, void *arg)
{
	struct heads *h = arg;
	__u64 *p;

	if (i >= h->blocks)
		return 1;
	p = FERRY_DATA_AT(h->data, (__u64)i * h->block_size, 8);
	if (!p)
		return 1;
	h->sum += *p;
	return 0;
}

FERRY_EXTENSION
int block_heads(struct ferry_ctx *ctx)
{
	struct heads h = {};

	h.data = ferry_data_ptr(ctx);
	if (!h.data || ctx->block_size == 0)
		return FERRY_EINVAL;
	h.block_size = ctx->block_size;
	h.blocks = ctx->data_len / ctx->block_size;
	bpf_loop(h.blocks, head, &h, 0);
	ctx->out[0] += h.sum;
	ctx->out[1] += h.blocks;
	return FERRY_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
