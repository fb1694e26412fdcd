package target

import (
	"sync/atomic"

	"github.com/ferry-fabric/ferry/fabric"
)

// counters are the target's statistics. Names are the wire names.
type counters struct {
	connections    atomic.Uint64
	requests       [16]atomic.Uint64 // by fabric.Op
	failures       atomic.Uint64
	execChunks     atomic.Uint64
	storageRead    atomic.Uint64
	storageWritten atomic.Uint64
	sentBytes      atomic.Uint64 // one-sided writes to initiators
	pulledBytes    atomic.Uint64 // one-sided reads from initiators
	storageNs      atomic.Uint64
	bpfNs          atomic.Uint64
	execCPUCopy    atomic.Uint64 // bytes copied by our code on the exec path
	cpuCopy        atomic.Uint64 // bytes copied by our code anywhere
	loaded         atomic.Uint64
	rejected       atomic.Uint64
}

func (s *Server) counters() []fabric.Counter {
	c := &s.stats
	var buffered uint64
	for _, ns := range s.namespaces {
		buffered += ns.buffered.Load()
	}
	out := []fabric.Counter{
		{Name: "connections", Value: c.connections.Load()},
		{Name: "failures", Value: c.failures.Load()},
		{Name: "exec_chunks", Value: c.execChunks.Load()},
		{Name: "storage_read_bytes", Value: c.storageRead.Load()},
		{Name: "storage_written_bytes", Value: c.storageWritten.Load()},
		{Name: "fabric_sent_bytes", Value: c.sentBytes.Load()},
		{Name: "fabric_pulled_bytes", Value: c.pulledBytes.Load()},
		{Name: "storage_ns", Value: c.storageNs.Load()},
		{Name: "bpf_ns", Value: c.bpfNs.Load()},
		{Name: "exec_cpu_copy_bytes", Value: c.execCPUCopy.Load()},
		{Name: "cpu_copy_bytes", Value: c.cpuCopy.Load()},
		{Name: "buffered_io_bytes", Value: buffered},
		{Name: "extensions_loaded", Value: c.loaded.Load()},
		{Name: "extensions_rejected", Value: c.rejected.Load()},
	}
	for op := fabric.OpHello; op <= fabric.OpStats; op++ {
		out = append(out, fabric.Counter{Name: "requests_" + op.String(), Value: c.requests[op].Load()})
	}
	return out
}
