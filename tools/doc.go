// Package tools holds Ferry's commands: ferry-target (the storage server
// daemon), ferryctl (load and run extensions, read and write blocks, show
// stats) and ferry-demo (pushdown against read-everything, side by side).
package tools
