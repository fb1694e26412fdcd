// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Hostile, but passes intake: reads the data map at an offset taken
 * straight from the arguments. The verifier must refuse it.
 */
#include "ferry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

FERRY_EXTENSION
int oob(struct ferry_ctx *ctx)
{
	__u8 *data = ferry_data_ptr(ctx);

	if (!data)
		return FERRY_EINVAL;
	ctx->out[0] = *(__u64 *)(data + ctx->args[0]);
	return 0;
}
