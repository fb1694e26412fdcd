package ext

// The generated files (*_bpfel.go, *_bpfel.o) are committed; regenerate
// with `go generate ./bpf/...` (needs clang and libbpf-dev) and commit the
// diff. bpf2go strips DWARF and maps the source directory away, so the
// output depends only on the sources and the compiler version.

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../include" -target bpfel -no-global-types aggregate aggregate.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../include" -target bpfel -no-global-types count count.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../include" -target bpfel -no-global-types filter filter.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../include" -target bpfel -no-global-types grep grep.c
