// Command ferryctl talks to a Ferry target: it loads extensions, runs them
// over blocks, reads and writes blocks, and shows statistics.
//
//	ferryctl exec -ext count -ns 1 -args 64,8,2,1000
//	ferryctl load my_ext.o
//	ferryctl exec -handle 1 -ns 1 -lba 0 -blocks 256
//
// Every command takes -target, -tenant, -json and -timeout; "ferryctl
// COMMAND -help" lists the rest.
package main
