//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * count: counts fixed-size records whose u64 field compares true.
 * args: [0] record size, [1] field offset, [2] comparison, [3] value.
 * out[0] += matching records.
 */
#include "records.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static long count_step(__u32 i, void *arg)
{
	struct records *r = arg;
	__u64 first = (__u64)i * r->batch;
	__u64 hits = 0;

	FERRY_UNROLL
	for (int k = 0; k < REC_BATCH_MAX; k++) {
		__u64 *f;

		if (k >= r->batch)
			break;
		f = records_field(r, first + k);
		if (!f)
			break;
		hits += ferry_compare(r->op, *f, r->value);
	}
	r->out[0] += hits;
	return 0;
}

FERRY_EXTENSION
int count(struct ferry_ctx *ctx)
{
	struct records r = {};
	int err;

	err = records_init(ctx, &r, 1);
	if (err)
		return err;
	bpf_loop(records_steps(&r), count_step, &r, 0);
	records_done(ctx, &r);
	return FERRY_OK;
}
