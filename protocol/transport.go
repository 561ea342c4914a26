package protocol

// Transports returns the buses a disk can be attached by, as Disk.Transport and
// Target.Transport spell them. A function, not a variable, so that no caller can change the
// list the agent and the server both validate against.
func Transports() []string {
	return []string{"virtio", "nvme", "sata", "mmc", "usb", "scsi"}
}
