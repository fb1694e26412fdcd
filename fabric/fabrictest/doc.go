// Package fabrictest checks that a fabric.Transport keeps the promises of
// the interface, in the manner of golang.org/x/net/nettest.TestConn: a
// provider's tests describe how to make its transports in a Provider and
// call TestTransport, which runs every behaviour the interface promises as
// subtests, through the interface only. Where providers may legitimately
// differ (which end of a connection learns of a remote access violation,
// how many credits come back with no traffic), Provider says so; nothing
// else is provider-specific here. BenchmarkPingPong and BenchmarkWrite1MiB
// are the shared benchmarks.
//
// The package is imported by tests only. It needs what the provider under
// test needs (an RDMA device for package rdma, loopback TCP for
// fabric/tcp) and nothing more.
package fabrictest
