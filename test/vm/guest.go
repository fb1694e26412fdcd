package vm

import (
	"fmt"
	"sort"
	"strings"
)

// The guest reports its progress on the console in lines that start with
// marker; the host turns them into Config.Progress lines.
const marker = "@ferry-vm@ "

// Files on the results share.
const (
	guestScript = "guest.sh"
	outputFile  = "output"
	exitFile    = "exit"
	scratchDir  = "scratch"
)

// Mount tags of the two 9p shares.
const (
	rootTag    = "hostroot"
	resultsTag = "results"
)

// modprobeWrapper is what the kernel runs to load a module on demand (rxe
// asks for its crc32 crypto module that way). The kernel runs it in the
// initramfs, whose busybox has no module tree, so it hands over to the
// host's modprobe inside the chroot.
const modprobeWrapper = `#!/bin/sh
exec /bin/busybox chroot /mnt/root /sbin/modprobe "$@"
`

// initScript is /init of the initramfs: it loads the 9p modules, mounts
// the host root read-only under a tmpfs overlay and the results share
// writable at share (the same path as on the host), chroots to run
// guest.sh, and powers off.
func initScript(share string) string {
	return `#!/bin/sh
B=/bin/busybox
R=/mnt/root
S=` + shellQuote(share) + `
say() { echo "` + marker + `$*"; }
fail() { say "fail $*"; $B sync; $B poweroff -f; }

$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
say "stage initramfs up"
for m in /modules/*.ko; do
	$B insmod "$m" || fail "insmod $m"
done
o=trans=virtio,version=9p2000.L,msize=512000
$B mkdir -p /mnt/host /mnt/rw
$B mount -t 9p -o $o,ro,cache=loose ` + rootTag + ` /mnt/host || fail "mount host root"

# Writes to the root go to a tmpfs layered over the host root, so the
# command can write anywhere and nothing reaches the host.
$B mount -t tmpfs rw /mnt/rw
$B mkdir -p /mnt/rw/upper /mnt/rw/work
$B mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work \
	root $R || fail "mount overlay root"
$B mount -t proc proc $R/proc
$B mount -t sysfs sys $R/sys
$B mount -t devtmpfs dev $R/dev
$B mkdir -p $R/dev/pts $R/dev/shm
$B mount -t devpts devpts $R/dev/pts
$B mount -t tmpfs shm $R/dev/shm
$B mount -t tmpfs run $R/run
$B mkdir -p "$R$S"
$B mount -t 9p -o $o,cache=none ` + resultsTag + ` "$R$S" || fail "mount results share"
echo /modprobe > /proc/sys/kernel/modprobe
$B hostname ferry-vm
say "stage chroot"
$B chroot $R /bin/sh "$S/` + guestScript + `"
$B sync
$B poweroff -f
`
}

// guestEnv is the command's environment: a clean base, the FERRY_*
// variables, CI from the host, then extra.
func guestEnv(share, ci string, extra map[string]string) []string {
	env := map[string]string{
		"PATH":              "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME":              "/root",
		"TMPDIR":            "/tmp",
		"FERRY_VM":          "1",
		"FERRY_RDMA_DEV":    RDMADevice,
		"FERRY_RDMA_NETDEV": RDMANetdev,
		"FERRY_RDMA_ADDR":   RDMAAddr,
		"FERRY_NVME":        NVMeDevice,
		"FERRY_SCRATCH":     share + "/" + scratchDir,
	}
	if ci != "" {
		env["CI"] = ci
	}
	for k, v := range extra {
		env[k] = v
	}
	kv := make([]string, 0, len(env))
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return kv
}

// runScript is guest.sh: it runs in the chroot with the host's tools, sets
// up soft-RoCE and the NVMe drive, then runs the command from dir.
func runScript(share, dir string, env, command []string) string {
	var cmd strings.Builder
	cmd.WriteString("env -i")
	for _, kv := range env {
		cmd.WriteString(" " + shellQuote(kv))
	}
	for _, a := range command {
		cmd.WriteString(" " + shellQuote(a))
	}
	return fmt.Sprintf(`S=%[1]s
say() { echo "%[2]s$*"; }
fail() { say "fail $*"; exit 1; }
# wait_for SECONDS COMMAND...: retry COMMAND every 0.1 s.
wait_for() {
	n=$(($1 * 10)); shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1)); [ $n -gt 0 ] || return 1
		sleep 0.1
	done
}
rxe_active() { rdma link show %[3]s/1 | grep -q 'state ACTIVE'; }

modprobe -a ib_uverbs rdma_ucm rdma_rxe veth || fail "modprobe rdma_rxe veth"
ip link set lo up
ip link add %[4]s type veth peer name %[4]s-peer || fail "add veth pair"
ip link set %[4]s-peer up && ip link set %[4]s up || fail "set veth up"
ip addr add %[5]s/16 dev %[4]s || fail "add address"
rdma link add %[3]s type rxe netdev %[4]s || fail "rdma link add %[3]s"
wait_for 30 rxe_active || fail "%[3]s not ACTIVE: $(rdma link show 2>&1)"
say "stage %[3]s up on %[4]s %[5]s"

modprobe nvme || fail "modprobe nvme"
wait_for 30 test -b %[6]s || fail "no %[6]s"
say "stage %[6]s ready"

mkdir -p "$S/%[7]s"
ulimit -l unlimited
cd %[8]s || fail "cd %[8]s"
say "stage running %[9]s"
%[10]s </dev/null >"$S/%[11]s" 2>&1
echo $? >"$S/%[12]s"
say "stage done"
`, shellQuote(share), marker, RDMADevice, RDMANetdev, RDMAAddr, NVMeDevice,
		scratchDir, shellQuote(dir), dquote(summary(command)), cmd.String(),
		outputFile, exitFile)
}

// summary shortens a command for progress lines.
func summary(command []string) string {
	s := strings.Join(strings.Fields(strings.Join(command, " ")), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// dquote escapes s for use inside double quotes in a POSIX shell.
func dquote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	return r.Replace(s)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"+
		"0123456789_-./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
