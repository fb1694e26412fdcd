//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * filter: appends fixed-size records whose u64 field compares true.
 * args: as count. out[0] += matching records, out[1] += records copied.
 * Copying stops when the next record would not fit in result_cap; that is
 * not an error: the initiator sees out[0] > out[1].
 */
#include "records.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* One record copy, run as a nested bpf_loop: 8 words a step. */
struct copy {
	__u8 *data;
	__u8 *result;
	__u64 src;   /* record offset in the data */
	__u64 dst;   /* record offset in the result */
	__u64 words; /* record size in words */
};

static long copy_step(__u32 i, void *arg)
{
	struct copy *c = arg;
	__u64 first = (__u64)i * 8;

	FERRY_UNROLL
	for (int k = 0; k < 8; k++) {
		__u64 *s, *d;

		if (first + k >= c->words)
			return 1;
		s = FERRY_DATA_AT(c->data, c->src + (first + k) * 8, 8);
		d = FERRY_RESULT_AT(c->result, c->dst + (first + k) * 8, 8);
		if (!s || !d)
			return 1;
		*d = *s;
	}
	return 0;
}

/*
 * Copies record n to the end of the result if it fits. Out of line so the
 * unrolled batch loop does not carry sixteen copies of it. The copy is a
 * nested bpf_loop rather than a bounded loop: a 512-word loop unrolled by
 * the verifier at each of the batch's call sites exceeds its budget.
 */
static __noinline int filter_copy(struct records *r, __u64 n)
{
	struct copy c = {
		.data = r->data,
		.result = r->result,
		.src = n * r->rec,
		.dst = r->result_len,
		.words = r->rec / 8,
	};

	if (c.dst + r->rec > r->result_cap)
		return 0;
	bpf_loop((c.words + 7) / 8, copy_step, &c, 0);
	r->result_len = c.dst + r->rec;
	r->out[1]++;
	return 0;
}

static long filter_step(__u32 i, void *arg)
{
	struct records *r = arg;
	__u64 first = (__u64)i * r->batch;

	FERRY_UNROLL
	for (int k = 0; k < REC_BATCH_MAX; k++) {
		__u64 *f;

		if (k >= r->batch)
			break;
		f = records_field(r, first + k);
		if (!f)
			break;
		if (ferry_compare(r->op, *f, r->value)) {
			r->out[0]++;
			filter_copy(r, first + k);
		}
	}
	return 0;
}

FERRY_EXTENSION
int filter(struct ferry_ctx *ctx)
{
	struct records r = {};
	int err;

	err = records_init(ctx, &r, 1);
	if (err)
		return err;
	bpf_loop(records_steps(&r), filter_step, &r, 0);
	records_done(ctx, &r);
	return FERRY_OK;
}
