package rdma

import (
	"os"
	"slices"
	"testing"
)

// TestLinks checks discovery and rxe management on the VM's rxe0, and adds
// and removes a second rxe link on the other end of its veth pair.
func TestLinks(t *testing.T) {
	needDevice(t)
	dev, netdev := os.Getenv("FERRY_RDMA_DEV"), os.Getenv("FERRY_RDMA_NETDEV")
	if dev == "" || netdev == "" {
		t.Skip("FERRY_RDMA_DEV and FERRY_RDMA_NETDEV name the VM's rxe link")
	}
	got, err := DeviceForNetdev(netdev)
	if err != nil || got != dev {
		t.Fatalf("DeviceForNetdev(%s) = %q, %v; want %q", netdev, got, err, dev)
	}
	find := func(name string) *Link {
		links, err := ListLinks()
		if err != nil {
			t.Fatal(err)
		}
		for i := range links {
			if links[i].Name == name {
				return &links[i]
			}
		}
		return nil
	}
	l := find(dev)
	if l == nil || !slices.Contains(l.Netdevs, netdev) || l.NumPorts != 1 {
		t.Fatalf("link %s: %+v", dev, l)
	}

	const extra = "ferrytest0"
	peer := netdev + "-peer"
	if err := AddRxe(extra, peer); err != nil {
		t.Fatal(err)
	}
	defer DelRxe(extra)
	if l := find(extra); l == nil || !slices.Contains(l.Netdevs, peer) {
		t.Fatalf("link %s after AddRxe: %+v", extra, l)
	}
	if got, err := DeviceForNetdev(peer); err != nil || got != extra {
		t.Fatalf("DeviceForNetdev(%s) = %q, %v", peer, got, err)
	}
	if err := AddRxe(extra, peer); err == nil {
		t.Fatal("adding the link twice succeeded")
	}
	if err := DelRxe(extra); err != nil {
		t.Fatal(err)
	}
	if l := find(extra); l != nil {
		t.Fatalf("link %s still listed after DelRxe", extra)
	}
	if err := DelRxe(extra); err == nil {
		t.Fatal("deleting a missing link succeeded")
	}
}
