// Package vm runs a command in a throwaway qemu guest that has a real RDMA
// device (soft-RoCE, rxe0) and an emulated NVMe drive (/dev/nvme0n1), for
// the tests that need both on machines that have neither.
//
// The guest boots the host's Debian kernel with a small initramfs (busybox
// and the 9p modules) that Run writes itself. The guest's root is the
// host's root file system, read-only over 9p, with a tmpfs overlay on top:
// the command sees the host's binaries and libraries (a cgo test binary
// built on the host with `go test -c` runs as is), may write anywhere, and
// nothing it writes reaches the host except through FERRY_SCRATCH, a
// directory on a second, writable 9p share that Run removes afterwards.
// The command runs as root from the host's current directory, with
//
//	FERRY_VM=1
//	FERRY_RDMA_DEV=rxe0          soft-RoCE on FERRY_RDMA_NETDEV
//	FERRY_RDMA_NETDEV=veth0      one end of a veth pair
//	FERRY_RDMA_ADDR=169.254.42.1 link-local; traffic never leaves the guest
//	FERRY_NVME=/dev/nvme0n1      512-byte logical blocks
//	FERRY_SCRATCH=<dir>          writable
//	CI                           passed through from the host
//
// plus Config.Env. There is one rxe device: both ends of a connection use
// it (rxe loops the traffic back). NVMeTargetScript and NVMeConnectScript
// give shell snippets that export the drive through the kernel's NVMe-oF
// target over that link, as a baseline peer.
//
// Needs, on the host: root; qemu-system-x86 and a kernel with rdma_rxe
// among its modules in /boot and /lib/modules (Debian's linux-image-amd64;
// the newest such kernel is chosen, none is named in the code);
// busybox-static; and for the guest, which uses the host's tools,
// rdma-core, ibverbs-providers, iproute2 and kmod, plus ibverbs-utils,
// perftest and nvme-cli for the tests. KVM is not used: nested KVM hangs
// on the project's machines, so qemu emulates (TCG).
//
// Time: under TCG on two shared cores, boot to the command takes 11 to
// 21 s (about 8 s of it the kernel, 2 to 5 s loading rxe through 9p), and
// power-off under a second. Everything runs emulated, several times
// slower than native: ib_write_lat -s 64 reports 11 to 20 us typical
// (p99 up to one 4 ms tick when the host is busy), and 4 KiB O_DIRECT reads over NVMe-oF on rxe run at 4 to 5 MB/s. Compare ratios
// measured in one run, never absolute figures across runs.
//
// Limits: one VM per Run, and each takes the guest's CPUs' worth of host
// CPU, so run one at a time on small machines. Writes outside
// FERRY_SCRATCH live in guest memory (Config.MemoryMiB). The host's /tmp
// is visible, but files created on the host while the guest runs may be
// missed (the root is cached). Only x86-64 guests. Run needs Linux for
// its safety net: qemu is started with a parent-death signal, so it dies
// with the thread that started it even if the caller crashes.
package vm
