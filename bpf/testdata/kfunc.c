// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Hostile: calls a kfunc, which the helper allow-list does not cover. */
#include "ferry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

extern void bpf_rcu_read_lock(void) __attribute__((section(".ksyms")));
extern void bpf_rcu_read_unlock(void) __attribute__((section(".ksyms")));

FERRY_EXTENSION
int kfunc(struct ferry_ctx *ctx)
{
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	return 0;
}
