package vm

import "fmt"

// NVMe-oF target the guest can serve with the kernel's nvmet, the baseline
// peer for benchmarks.
const (
	NVMeTargetNQN     = "nqn.2024-01.io.ferry-fabric:vm-baseline"
	NVMeTargetSvcID   = "4420"
	nvmetConfigfsRoot = "/sys/kernel/config/nvmet"
)

// NVMeTargetScript returns a POSIX shell snippet, for a command run by
// Run, that exports NVMeDevice through the kernel NVMe-oF target (nvmet,
// nvmet-rdma) on RDMAAddr port 4420 as subsystem NVMeTargetNQN, any host
// allowed. It exits the shell with status 1 if a step fails.
//
// A host in the same guest then reaches it with
//
//	nvme connect -t rdma -a $FERRY_RDMA_ADDR -s 4420 -n <NVMeTargetNQN>
//
// which adds a second controller, /dev/nvme1n1 (see NVMeConnectScript).
func NVMeTargetScript() string {
	return fmt.Sprintf(`(
set -e
modprobe -a configfs nvmet nvmet-rdma
grep -qs ' /sys/kernel/config configfs' /proc/mounts ||
	mount -t configfs none /sys/kernel/config
s=%[1]s/subsystems/%[2]s
mkdir $s
echo 1 >$s/attr_allow_any_host
mkdir $s/namespaces/1
echo -n %[3]s >$s/namespaces/1/device_path
echo 1 >$s/namespaces/1/enable
p=%[1]s/ports/1
mkdir $p
echo rdma >$p/addr_trtype
echo ipv4 >$p/addr_adrfam
echo %[4]s >$p/addr_traddr
echo %[5]s >$p/addr_trsvcid
ln -s $s $p/subsystems/%[2]s
) || { echo "nvmet: setup failed" >&2; exit 1; }
`, nvmetConfigfsRoot, NVMeTargetNQN, NVMeDevice, RDMAAddr, NVMeTargetSvcID)
}

// NVMeConnectScript returns a POSIX shell snippet that runs a discovery
// against the target NVMeTargetScript set up (printing the discovery log),
// connects the kernel NVMe-oF host (nvme-rdma) to it, and waits up to 10 s
// for its namespace to appear as /dev/nvme1n1. It exits the shell with
// status 1 if a step fails.
func NVMeConnectScript() string {
	return fmt.Sprintf(`(
set -e
modprobe nvme-rdma
d=$(nvme discover -t rdma -a %[1]s -s %[2]s)
echo "$d"
echo "$d" | grep -q 'subnqn: *%[3]s'
nvme connect -t rdma -a %[1]s -s %[2]s -n %[3]s
n=100
while [ ! -b /dev/nvme1n1 ] && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
[ -b /dev/nvme1n1 ]
) || { echo "nvme connect: failed" >&2; exit 1; }
`, RDMAAddr, NVMeTargetSvcID, NVMeTargetNQN)
}
