package rdma

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/Mellanox/rdmamap"
	"github.com/vishvananda/netlink"

	"github.com/ferry-fabric/ferry/fabric"
)

// Link is an RDMA device as the kernel's RDMA netlink lists it.
type Link struct {
	Index    uint32
	Name     string
	NodeGUID string
	NumPorts uint32
	// Netdevs are the network interfaces whose addresses reach the
	// device (for RoCE and rxe, the interface it runs on).
	Netdevs []string
}

// ErrNoRDMANetlink is wrapped when the kernel has no RDMA netlink family:
// no RDMA support at all (CONFIG_INFINIBAND unset, or ib_core not loaded).
// It wraps fabric.ErrNotSupported.
var ErrNoRDMANetlink = fmt.Errorf("kernel has no RDMA netlink support: %w",
	fabric.ErrNotSupported)

// DeviceForNetdev returns the RDMA device that serves network interface
// netdev, as "rxe0" for the rxe link on veth0. It reads sysfs
// (/sys/class/infiniband) through rdmamap.
func DeviceForNetdev(netdev string) (string, error) {
	dev, err := rdmamap.GetRdmaDeviceForNetdevice(netdev)
	if err != nil {
		return "", fmt.Errorf("find rdma device for %s: %w", netdev, err)
	}
	if dev == "" {
		return "", fmt.Errorf("find rdma device for %s: none", netdev)
	}
	return dev, nil
}

// AddRxe creates soft-RoCE device name on network interface netdev, as
// `rdma link add NAME type rxe netdev NETDEV` does. It needs root and the
// rdma_rxe module (the kernel loads it on demand when it can).
func AddRxe(name, netdev string) error {
	if err := netlink.RdmaLinkAdd(name, "rxe", netdev); err != nil {
		return fmt.Errorf("add rxe link %s on %s: %w", name, netdev, rdmaNetlinkErr(err))
	}
	return nil
}

// DelRxe removes soft-RoCE device name.
func DelRxe(name string) error {
	if err := netlink.RdmaLinkDel(name); err != nil {
		return fmt.Errorf("delete rxe link %s: %w", name, rdmaNetlinkErr(err))
	}
	return nil
}

// ListLinks lists the RDMA devices with the interfaces they serve.
func ListLinks() ([]Link, error) {
	ls, err := netlink.RdmaLinkList()
	if err != nil {
		return nil, fmt.Errorf("list rdma links: %w", rdmaNetlinkErr(err))
	}
	out := make([]Link, 0, len(ls))
	for _, l := range ls {
		a := l.Attrs
		out = append(out, Link{Index: a.Index, Name: a.Name, NodeGUID: a.NodeGuid,
			NumPorts: a.NumPorts, Netdevs: netdevsOf(a.Name)})
	}
	return out, nil
}

// netdevsOf finds the interfaces that device dev serves by asking
// rdmamap about each interface.
func netdevsOf(dev string) []string {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range links {
		name := l.Attrs().Name
		if d, err := rdmamap.GetRdmaDeviceForNetdevice(name); err == nil && d == dev {
			out = append(out, name)
		}
	}
	return out
}

// rdmaNetlinkErr marks the errors of a kernel without RDMA netlink.
func rdmaNetlinkErr(err error) error {
	// Without RDMA in the kernel a NETLINK_RDMA socket cannot be opened.
	if errors.Is(err, syscall.EPROTONOSUPPORT) {
		return fmt.Errorf("%w: %w", ErrNoRDMANetlink, err)
	}
	return err
}
