// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Hostile: declares a map of its own to keep state between requests. */
#include "ferry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} stash SEC(".maps");

FERRY_EXTENSION
int own_map(struct ferry_ctx *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&stash, &k);

	if (v)
		ctx->out[0] = *v;
	return 0;
}
