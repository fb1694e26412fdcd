// Command ferry-demo shows what pushdown saves. It writes a dataset of
// fixed-size records, starts a ferry-target on it, and for every shipped
// extension runs it twice: pushed down to the target, and as "read every
// block, compute locally" with the same reference code the tests use. It
// prints whether the results agree, the bytes each way moved over the
// transport and the wall time, and exits non-zero if any result differs.
package main
