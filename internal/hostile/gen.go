package hostile

// The hostile sources live in bpf/testdata; the generated files are committed.

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -target bpfel -no-global-types probe_read ../../bpf/testdata/probe_read.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -target bpfel -no-global-types printk ../../bpf/testdata/printk.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -target bpfel -no-global-types own_map ../../bpf/testdata/own_map.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -target bpfel -no-global-types bss ../../bpf/testdata/bss.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -target bpfel -no-global-types two_progs ../../bpf/testdata/two_progs.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -target bpfel -no-global-types not_syscall ../../bpf/testdata/not_syscall.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -target bpfel -no-global-types kfunc ../../bpf/testdata/kfunc.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -target bpfel -no-global-types oob ../../bpf/testdata/oob.c
