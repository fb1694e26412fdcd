// Package target is Ferry's storage server: it serves namespaces backed by
// block devices or files to initiators over any fabric.Transport, and runs
// the initiators' eBPF extensions over their blocks in the kernel.
//
// The exec path copies no data with the CPU: a storage read lands, with
// O_DIRECT, in the mmapped memory of the engine's BPF_F_MMAPABLE data map;
// the extension reads the blocks in place; its result is built in the
// mmapped result map, and that memory, registered with the transport, is
// what the one-sided write to the initiator's buffer is made from. The
// counters report bytes copied by Ferry's own code (cpu_copy_bytes) and
// bytes that went through the page cache because a file system refused
// O_DIRECT (buffered_io_bytes); copies inside a kernel TCP stack are the
// transport's and are not counted.
//
// Requests run concurrently: every request of a connection gets its own
// goroutine, bounded by the queue depth agreed at hello, and extension
// runs share a pool of workers sized to the cores. Block reads and writes
// use their own registered buffers and never wait for a worker, so a slow
// extension delays only other extension runs.
//
// Extensions belong to a tenant (named at hello) and stay loaded across
// that tenant's connections until unloaded.
//
// Known gaps, which the multi-tenant work closes: tenants are not
// authenticated; an extension can name any slot of the shared maps, not
// only its own; and slot memory is not cleared between requests, so bytes
// past data_len, the scratch area and old result bytes may hold another
// request's data.
//
// Needs: root (or CAP_BPF and CAP_PERFMON) for eBPF, kernel 6.1 or later.
package target
