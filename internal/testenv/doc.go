// Package testenv holds what Ferry's tests share about their environment:
// the rule that a test needing a capability (root, an RDMA device) skips
// when run by a developer without it, but fails in CI (CI=true), where the
// capability is supposed to be there; and the check, for a package's
// TestMain, that its tests leave no goroutines, file descriptors or other
// resources behind.
package testenv
