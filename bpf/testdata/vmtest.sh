#!/bin/sh
# Runs the kernel tests of package bpf under another kernel in a qemu (TCG)
# guest, to check that every shipped extension loads there too (Linux 6.1
# is the oldest we promise). The guest boots the Debian kernel with an
# initramfs holding busybox and the static test binary; nothing else.
#
# Needs: qemu-system-x86, linux-image-amd64 (or KERNEL=path), busybox-static,
# cpio. Usage, from the repository root:
#   sh bpf/testdata/vmtest.sh [go test -run regexp]
set -eu

run=${1:-'TestLoad|TestExtensionsMatchRef|TestRunChecksInput'}
kernel=${KERNEL:-$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | head -n1)}
if [ -z "$kernel" ]; then
	echo "vmtest: no kernel in /boot (apt-get install linux-image-amd64)" >&2
	exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

CGO_ENABLED=0 go test -c -o "$work/root/bpf.test" ./bpf/
mkdir -p "$work/root/bin" "$work/root/proc" "$work/root/sys" "$work/root/tmp"
cp "$(command -v busybox)" "$work/root/bin/busybox"
ln -s busybox "$work/root/bin/sh"
cat > "$work/root/init" <<EOI
#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo "vmtest: kernel \$(/bin/busybox uname -r)"
cd / && CI=true /bpf.test -test.v -test.run '$run' 2>&1 | /bin/busybox grep -v '^=== RUN'
echo "vmtest: done"
/bin/busybox poweroff -f
EOI
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

timeout 900 qemu-system-x86_64 -machine accel=tcg -cpu max -m 1024 -smp 2 \
	-nographic -no-reboot -kernel "$kernel" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 quiet panic=-1" | tee "$work/log" | grep -v '^\['
grep -q '^ok\|^PASS' "$work/log"
