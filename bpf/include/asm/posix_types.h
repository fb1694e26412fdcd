/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The uapi headers include <asm/posix_types.h>, which Debian installs only under
 * the host's multiarch directory, not for -target bpf. The generic one is
 * right for BPF (64-bit longs, little or big endian alike).
 */
#include <asm-generic/posix_types.h>
