//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * grep: finds a byte pattern of 1 to 16 bytes.
 * args: [0] pattern length, [1] and [2] the pattern, little-endian (byte i
 * of the pattern is byte i%8 of args[1 + i/8]; bytes past the length are
 * ignored).
 * out[0] += occurrences, counted at every byte offset, overlapping ones
 * included. The absolute byte offset (lba * block_size + offset) of each is
 * appended to the result as a u64 while it fits; out[1] += offsets written.
 *
 * Each chunk is searched on its own: an occurrence that starts in one
 * chunk and ends in the next (at most 15 bytes before a 1 MiB boundary) is
 * not counted. Initiators that need those search the seams themselves.
 */
#include "ferry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ONES 0x0101010101010101ULL
#define LOWS 0x7f7f7f7f7f7f7f7fULL

struct grep {
	__u8 *data;
	__u8 *result;
	__u64 len;      /* data_len */
	__u64 plen;     /* pattern length */
	__u64 lo, hi;   /* pattern bytes 0-7 and 8-15, masked */
	__u64 mlo, mhi; /* which bits of lo and hi take part */
	__u64 first;    /* first pattern byte in every byte */
	__u64 base;     /* absolute byte offset of the chunk */
	__u64 hits;
	__u64 written;
	__u32 result_len;
	__u32 result_cap;
};

/*
 * Whether the pattern starts at p; the caller checked p + plen <= len.
 * Loop-free, so that verifying it costs the same for every position.
 */
static __always_inline int grep_at(const struct grep *g, __u64 p)
{
	__u64 *w = FERRY_DATA_AT(g->data, p, 16), a, b;

	if (w) {
		a = w[0];
		b = w[1];
	} else {
		/*
		 * Within the last 15 bytes of a full slot a 16-byte load would
		 * overrun the map: load the slot's last 16 bytes and shift them
		 * down by s = 1..15 bytes instead (p + plen <= FERRY_DATA_MAX).
		 */
		__u64 *t = (__u64 *)(g->data + FERRY_DATA_MAX - 16);
		__u64 s = p - (FERRY_DATA_MAX - 16);

		if (s == 0 || s > 15)
			return 0;
		if (s < 8) {
			a = (t[0] >> (s * 8)) | (t[1] << (64 - s * 8));
			b = t[1] >> (s * 8);
		} else {
			a = t[1] >> ((s - 8) * 8);
			b = 0;
		}
	}
	return ((a ^ g->lo) & g->mlo) == 0 && ((b ^ g->hi) & g->mhi) == 0;
}

/* The word being checked by grep_pos. */
struct grep_word {
	struct grep *g;
	__u64 o;    /* offset of the word */
	__u64 cand; /* 0x80 in the bytes equal to the first pattern byte */
};

/*
 * Checks start position o + q, run as a nested bpf_loop over the eight
 * bytes of a candidate word (a few percent of words on typical data). A
 * bounded loop here would be verified once per position and per outcome
 * of the append before it; the 6.1 and 6.18 verifiers both run out of
 * budget on that. A callback is verified once per call site.
 */
static long grep_pos(__u32 q, void *arg)
{
	struct grep_word *gw = arg;
	struct grep *g = gw->g;
	__u64 p = gw->o + (q & 7);

	if (!((gw->cand >> ((q & 7) * 8)) & 0x80))
		return 0;
	if (p + g->plen > g->len)
		return 1;
	if (!grep_at(g, p))
		return 0;
	g->hits++;
	if (ferry_append_u64(g->result, &g->result_len, g->result_cap, g->base + p))
		g->written++;
	return 0;
}

/* One step: FERRY_STEP bytes of start positions. */
static long grep_step(__u32 i, void *arg)
{
	struct grep *g = arg;
	__u64 off = (__u64)i * FERRY_STEP;

	FERRY_UNROLL
	for (int k = 0; k < FERRY_STEP_WORDS; k++) {
		__u64 o = off + k * 8, *w, x, z;

		if (o >= g->len)
			break;
		w = FERRY_DATA_AT(g->data, o, 8);
		if (!w)
			break;

		/* 0x80 in exactly the bytes of the word equal to the first byte. */
		x = *w ^ g->first;
		z = ~(((x & LOWS) + LOWS) | x | LOWS);
		if (z) {
			struct grep_word gw = { .g = g, .o = o, .cand = z };

			bpf_loop(8, grep_pos, &gw, 0);
		}
	}
	return 0;
}

static __always_inline __u64 grep_mask(__u64 n)
{
	return n >= 8 ? ~0ULL : (1ULL << (n * 8)) - 1;
}

FERRY_EXTENSION
int grep(struct ferry_ctx *ctx)
{
	struct grep g = {};
	__u64 plen = ctx->args[0];

	if (ctx->data_len > FERRY_DATA_MAX || ctx->result_cap > FERRY_RESULT_MAX ||
	    ctx->result_len > ctx->result_cap)
		return FERRY_EINVAL;
	if (plen < 1 || plen > 16)
		return FERRY_EINVAL;
	g.data = ferry_data_ptr(ctx);
	g.result = ferry_result_ptr(ctx);
	if (!g.data || !g.result)
		return FERRY_EINVAL;

	g.len = ctx->data_len;
	g.plen = plen;
	g.mlo = grep_mask(plen);
	g.mhi = plen > 8 ? grep_mask(plen - 8) : 0;
	g.lo = ctx->args[1] & g.mlo;
	g.hi = ctx->args[2] & g.mhi;
	g.first = (g.lo & 0xff) * ONES;
	g.base = ctx->lba * ctx->block_size;
	g.result_len = ctx->result_len;
	g.result_cap = ctx->result_cap;

	bpf_loop(ferry_steps(ctx->data_len, FERRY_STEP), grep_step, &g, 0);

	ctx->result_len = g.result_len;
	ctx->out[0] += g.hits;
	ctx->out[1] += g.written;
	return FERRY_OK;
}
