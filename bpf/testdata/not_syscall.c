// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Hostile: a socket filter, not a syscall program. */
#include "ferry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("socket")
int not_syscall(void *skb)
{
	return 0;
}
