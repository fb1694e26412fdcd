/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ferry.h - the SDK for Ferry extensions.
 *
 * An extension is one C file with exactly one program in SEC("syscall"),
 * compiled with `clang -O2 -g -target bpf -I<this dir>`. The storage target
 * runs it with BPF_PROG_RUN over one slot of block data at a time and sends
 * back only what the extension writes: the result bytes and the four out[]
 * scalars.
 *
 * What an extension may use (the target's intake rejects anything else):
 *   - the three maps declared below, and read-only constants (.rodata);
 *     no .data, no .bss, no maps of its own;
 *   - the helpers bpf_map_lookup_elem, bpf_loop, bpf_ktime_get_ns and
 *     bpf_get_prandom_u32; no kfuncs, no ksyms, no tail calls.
 * The license must be GPL-compatible because bpf_loop is GPL-only:
 *
 *     char LICENSE[] SEC("license") = "Dual BSD/GPL";
 *
 * Every extension must load on Linux 6.1 as well as on current kernels:
 * no open-coded iterators (6.4+), no loops of more than a few thousand
 * iterations. Scan with bpf_loop and a callback that handles a small fixed
 * piece of work; see "Scanning" below.
 */
#ifndef FERRY_H
#define FERRY_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/*
 * ABI sizes. The target's maps have exactly these value sizes, so the
 * verifier can bound every access with these constants.
 */
#define FERRY_DATA_MAX    (1u << 20)  /* bytes of block data in one slot */
#define FERRY_RESULT_MAX  (256u << 10) /* bytes of result in one slot */
#define FERRY_SCRATCH_MAX 4096u        /* bytes of scratch in one slot */

/* Return codes of the entry program. Negative values are errors. */
#define FERRY_OK      0
#define FERRY_EINVAL  (-22) /* bad arguments or context */
#define FERRY_ERANGE  (-34) /* a value or offset out of range */
#define FERRY_ENOSPC  (-28) /* the result does not fit and the extension needs it to */

/*
 * The context of one run. The target fills it, runs the program and reads
 * it back. Go mirrors this layout (136 bytes, no padding).
 *
 * A request over more blocks than one slot holds runs as several chunks, in
 * order, on the same slot; the chunk's blocks may sit in another element of
 * ferry_data (data_slot), because the target reads the next chunk while
 * this one runs. result_len and out[] carry from one chunk to the
 * next, so extensions stream: accumulate into out[], append to the result.
 */
struct ferry_ctx {
	__u32 slot;       /* in: this request's element of ferry_result and ferry_scratch */
	__u32 data_len;   /* in: bytes of block data in this chunk, <= FERRY_DATA_MAX */
	__u32 result_cap; /* in: bytes the result may hold in total, <= FERRY_RESULT_MAX */
	__u32 result_len; /* in/out: result bytes written so far; append after them */
	__u32 block_size; /* in */
	__u32 chunk;      /* in: index of this chunk within the request, 0 first */
	__u32 data_slot;  /* in: which element of ferry_data holds this chunk */
	__u32 reserved;   /* zero */
	__u64 lba;        /* in: first block of this chunk */
	__u64 args[8];    /* in: the request's arguments */
	__u64 out[4];     /* in/out: scalar outputs, zero at chunk 0 */
};

/*
 * The maps. max_entries here is a placeholder: the target rewrites it to
 * its slot count and replaces these maps with its own, so one compiled ELF
 * works with any number of slots. Element ctx->data_slot of ferry_data and
 * element ctx->slot of the others belong to this run.
 *
 * ferry_data:    the chunk's blocks, data_len bytes from offset 0. Treat as
 *                read-only; the target may reuse the slot for the next chunk.
 * ferry_result:  the request's result, result_len bytes so far.
 * ferry_scratch: private to the slot for the duration of one request: the
 *                chunks of a request run on the same slot, one at a time,
 *                and see what earlier chunks left there. Nothing else is
 *                promised: at chunk 0 it holds whatever the slot's previous
 *                user left (it is NOT zeroed). Initialise it at chunk 0.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(value_size, FERRY_DATA_MAX);
	__uint(map_flags, BPF_F_MMAPABLE);
} ferry_data SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(value_size, FERRY_RESULT_MAX);
	__uint(map_flags, BPF_F_MMAPABLE);
} ferry_result SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(value_size, FERRY_SCRATCH_MAX);
} ferry_scratch SEC(".maps");

/* The entry program: FERRY_EXTENSION int name(struct ferry_ctx *ctx) */
#define FERRY_EXTENSION SEC("syscall")

/*
 * Slot accessors. They return NULL only if ctx->slot is not a slot of the
 * target, which the target never does; return FERRY_EINVAL then.
 */
static __always_inline __u8 *ferry_data_ptr(const struct ferry_ctx *ctx)
{
	__u32 key = ctx->data_slot;

	return bpf_map_lookup_elem(&ferry_data, &key);
}

static __always_inline __u8 *ferry_result_ptr(const struct ferry_ctx *ctx)
{
	__u32 key = ctx->slot;

	return bpf_map_lookup_elem(&ferry_result, &key);
}

static __always_inline __u8 *ferry_scratch_ptr(const struct ferry_ctx *ctx)
{
	__u32 key = ctx->slot;

	return bpf_map_lookup_elem(&ferry_scratch, &key);
}

/*
 * Bounds. The verifier accepts base + off only if it can prove
 * off + size <= the value size. FERRY_AT checks exactly that against a
 * constant and yields NULL otherwise; size must be a constant.
 *
 * The empty asm keeps clang from rewriting the comparison into a form that
 * tests a different register than the one added to the pointer (a classic
 * cause of "invalid access to map value" with clang 14).
 */
static __always_inline __u64 ferry_opaque(__u64 v)
{
	asm volatile("" : "+r"(v));
	return v;
}

#define FERRY_AT(base, off, max, size)                                       \
	({                                                                    \
		__u64 __o = ferry_opaque((__u64)(off));                       \
		(__o > (__u64)(max) - (size)) ? (void *)0                     \
					      : (void *)((__u8 *)(base) + __o); \
	})

#define FERRY_DATA_AT(base, off, size)    FERRY_AT(base, off, FERRY_DATA_MAX, size)
#define FERRY_RESULT_AT(base, off, size)  FERRY_AT(base, off, FERRY_RESULT_MAX, size)
#define FERRY_SCRATCH_AT(base, off, size) FERRY_AT(base, off, FERRY_SCRATCH_MAX, size)

/*
 * Appends one u64 to the result if it fits in both result_cap and the map.
 * *len is the result length so far; returns 1 if written, 0 if full.
 */
static __always_inline int ferry_append_u64(__u8 *result, __u32 *len, __u32 cap, __u64 v)
{
	__u64 l = *len;
	__u64 *p;

	if (l + 8 > cap)
		return 0;
	p = FERRY_RESULT_AT(result, l, 8);
	if (!p)
		return 0;
	*p = v;
	*len = l + 8;
	return 1;
}

/*
 * Scanning.
 *
 * A 1 MiB slot cannot be walked with a plain loop (the verifier follows
 * every iteration and gives up after a few thousand jumps), and open-coded
 * iterators do not exist on 6.1. Instead:
 *
 *   1. Put everything the scan needs in a struct on the entry program's
 *      stack: the data/result pointers from the accessors (the verifier
 *      tracks pointers spilled there), lengths, arguments, accumulators.
 *   2. Call bpf_loop(n, cb, &state, 0) with n = number of steps; each step
 *      handles a small fixed piece: one record, or FERRY_STEP bytes with a
 *      small unrolled body (clang 14 spills when unrolling much wider than
 *      16 words; FERRY_STEP_WORDS words is known to be fine).
 *   3. In the callback, derive the offset from the step index, never from
 *      a counter kept in the state: the index is an unknown scalar, so the
 *      verifier checks the callback once instead of once per value.
 *      Bound every access with FERRY_*_AT. Return 0 to go on, 1 to stop.
 *   4. Copy the accumulators back to ctx->out[] and ctx->result_len.
 *
 *   struct scan { __u8 *data; __u32 len; __u64 hits; };
 *
 *   static long step(__u32 i, void *arg)
 *   {
 *       struct scan *s = arg;
 *       __u64 off = (__u64)i * FERRY_STEP;
 *       __u64 *w = FERRY_DATA_AT(s->data, off, FERRY_STEP);
 *
 *       if (!w)
 *           return 1;
 *       FERRY_UNROLL
 *       for (int k = 0; k < FERRY_STEP_WORDS; k++)
 *           s->hits += w[k] == 0;
 *       return 0;
 *   }
 *
 *   bpf_loop(ferry_steps(ctx->data_len, FERRY_STEP), step, &s, 0);
 *
 * Counters kept in the state (result length, totals) are fine as long as
 * every use as an offset goes through FERRY_*_AT: the check bounds them, so
 * the verifier's view of them converges after one pass.
 */
#define FERRY_STEP_WORDS 16
#define FERRY_STEP       (FERRY_STEP_WORDS * 8)
#define FERRY_UNROLL     _Pragma("unroll")
#define FERRY_NO_UNROLL  _Pragma("clang loop unroll(disable)")

/* Number of steps of `step` bytes that cover len bytes (len <= 1 MiB). */
static __always_inline __u32 ferry_steps(__u32 len, __u32 step)
{
	return (len + step - 1) / step;
}

/* Unsigned comparisons selected by an argument (count, filter). */
enum ferry_cmp {
	FERRY_CMP_EQ = 0,
	FERRY_CMP_NE = 1,
	FERRY_CMP_LT = 2,
	FERRY_CMP_LE = 3,
	FERRY_CMP_GT = 4,
	FERRY_CMP_GE = 5,
};

static __always_inline int ferry_compare(__u64 op, __u64 a, __u64 b)
{
	switch (op) {
	case FERRY_CMP_EQ:
		return a == b;
	case FERRY_CMP_NE:
		return a != b;
	case FERRY_CMP_LT:
		return a < b;
	case FERRY_CMP_LE:
		return a <= b;
	case FERRY_CMP_GT:
		return a > b;
	default:
		return a >= b;
	}
}

#endif /* FERRY_H */
