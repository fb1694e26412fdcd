//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aggregate: sum, min, max and count of a u64 field of fixed-size records.
 * args: [0] record size, [1] field offset.
 * out[0] sum (wrapping), out[1] min, out[2] max, out[3] count; carried
 * across chunks. At chunk 0 min starts at UINT64_MAX and max at 0, so an
 * empty request reports min > max.
 */
#include "records.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static long aggregate_step(__u32 i, void *arg)
{
	struct records *r = arg;
	__u64 first = (__u64)i * r->batch;
	__u64 sum = 0, n = 0, lo = r->out[1], hi = r->out[2];

	FERRY_UNROLL
	for (int k = 0; k < REC_BATCH_MAX; k++) {
		__u64 *f, v;

		if (k >= r->batch)
			break;
		f = records_field(r, first + k);
		if (!f)
			break;
		v = *f;
		sum += v;
		n++;
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	r->out[0] += sum;
	r->out[1] = lo;
	r->out[2] = hi;
	r->out[3] += n;
	return 0;
}

FERRY_EXTENSION
int aggregate(struct ferry_ctx *ctx)
{
	struct records r = {};
	int err;

	err = records_init(ctx, &r, 0);
	if (err)
		return err;
	if (ctx->chunk == 0) {
		r.out[1] = ~0ULL;
		r.out[2] = 0;
	}
	bpf_loop(records_steps(&r), aggregate_step, &r, 0);
	records_done(ctx, &r);
	return FERRY_OK;
}
