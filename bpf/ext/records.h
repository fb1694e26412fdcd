/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * records.h - argument checks and stepping shared by the fixed-size record
 * extensions (count, filter, aggregate).
 *
 * One bpf_loop step handles a batch of records worth about FERRY_STEP bytes
 * (16 records of 8 bytes, 2 of 64, 1 of 128 or more): enough work per
 * callback to amortise the call, small enough for clang 14 to unroll.
 */
#ifndef FERRY_RECORDS_H
#define FERRY_RECORDS_H

#include "ferry.h"

#define REC_BATCH_MAX 16

struct records {
	__u8 *data;
	__u8 *result;
	__u64 rec;      /* record size */
	__u64 field;    /* field offset within a record */
	__u64 op;       /* comparison, count and filter only */
	__u64 value;    /* comparison operand */
	__u64 nrec;     /* records in this chunk */
	__u64 batch;    /* records per step */
	__u64 out[4];
	__u32 result_len;
	__u32 result_cap;
};

/*
 * Checks the context and the record arguments and fills r. Returns
 * FERRY_OK or FERRY_EINVAL.
 */
static __always_inline int records_init(struct ferry_ctx *ctx, struct records *r, int cmp)
{
	__u64 rec = ctx->args[0], field = ctx->args[1];
	__u32 bs = ctx->block_size;

	if (ctx->data_len > FERRY_DATA_MAX || ctx->result_cap > FERRY_RESULT_MAX ||
	    ctx->result_len > ctx->result_cap)
		return FERRY_EINVAL;
	if (rec < 8 || rec > 4096 || rec % 8 != 0 || bs == 0 || bs % rec != 0)
		return FERRY_EINVAL;
	if (field % 8 != 0 || field + 8 > rec)
		return FERRY_EINVAL;
	if (cmp && ctx->args[2] > FERRY_CMP_GE)
		return FERRY_EINVAL;

	r->data = ferry_data_ptr(ctx);
	r->result = ferry_result_ptr(ctx);
	if (!r->data || !r->result)
		return FERRY_EINVAL;

	r->rec = rec;
	r->field = field;
	r->op = ctx->args[2];
	r->value = ctx->args[3];
	r->nrec = ctx->data_len / rec;
	r->batch = rec >= FERRY_STEP ? 1 : FERRY_STEP / rec;
	r->result_len = ctx->result_len;
	r->result_cap = ctx->result_cap;
	r->out[0] = ctx->out[0];
	r->out[1] = ctx->out[1];
	r->out[2] = ctx->out[2];
	r->out[3] = ctx->out[3];
	return FERRY_OK;
}

static __always_inline __u32 records_steps(const struct records *r)
{
	return (r->nrec + r->batch - 1) / r->batch;
}

static __always_inline void records_done(struct ferry_ctx *ctx, const struct records *r)
{
	ctx->result_len = r->result_len;
	ctx->out[0] = r->out[0];
	ctx->out[1] = r->out[1];
	ctx->out[2] = r->out[2];
	ctx->out[3] = r->out[3];
}

/*
 * A pointer to the field of record n, or NULL when n is past the chunk or
 * the access would leave the map value.
 */
static __always_inline __u64 *records_field(const struct records *r, __u64 n)
{
	if (n >= r->nrec)
		return 0;
	return FERRY_DATA_AT(r->data, n * r->rec + r->field, 8);
}

#endif /* FERRY_RECORDS_H */
