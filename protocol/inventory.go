package protocol

// Inventory is the device's hardware as the agent sees it. Jobs are chosen by rules on it and
// scenarios apply to devices by it.
type Inventory struct {
	DMI         DMI           `json:"dmi"`
	CPU         CPU           `json:"cpu"`
	MemoryBytes uint64        `json:"memory_bytes"`
	Disks       []Disk        `json:"disks,omitempty"`
	NICs        []NIC         `json:"nics,omitempty"`
	USB         []USBDevice   `json:"usb,omitempty"`
	Radios      []Radio       `json:"radios,omitempty"`
	Inputs      []InputDevice `json:"inputs,omitempty"`
	// Modules names the optional hardware modules present (wifi, lte, bluetooth, buttons),
	// derived from the rest; scenarios and job rules match on it.
	Modules []string `json:"modules,omitempty"`
}

// DMI is the SMBIOS system information.
type DMI struct {
	Vendor  string `json:"vendor,omitempty"`
	Product string `json:"product,omitempty"`
	Version string `json:"version,omitempty"`
	Serial  string `json:"serial,omitempty"`
	UUID    string `json:"uuid,omitempty"`
	Board   string `json:"board,omitempty"`
}

// CPU describes the processor.
type CPU struct {
	Model string `json:"model,omitempty"`
	Cores int    `json:"cores"`
}

// Disk is a block device that could be a flash target.
type Disk struct {
	Name      string `json:"name"` // vda, nvme0n1, mmcblk0
	Path      string `json:"path"` // /dev/vda
	Model     string `json:"model,omitempty"`
	Serial    string `json:"serial,omitempty"`
	SizeBytes int64  `json:"size_bytes"`
	Transport string `json:"transport,omitempty"` // virtio, nvme, sata, mmc, usb, scsi
	Removable bool   `json:"removable,omitempty"`
	ReadOnly  bool   `json:"read_only,omitempty"`
}

// NIC is a network interface.
type NIC struct {
	Name      string `json:"name"`
	MAC       string `json:"mac"`
	Driver    string `json:"driver,omitempty"`
	Wireless  bool   `json:"wireless,omitempty"`
	Carrier   bool   `json:"carrier,omitempty"`
	SpeedMbps int    `json:"speed_mbps,omitempty"`
}

// USBDevice is one USB device.
type USBDevice struct {
	VID          string `json:"vid"` // 4 hex digits
	PID          string `json:"pid"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	Serial       string `json:"serial,omitempty"`
	Path         string `json:"path,omitempty"` // sysfs bus path, e.g. 1-1.2
}

// Radio is a wireless module: Wi-Fi PHY, Bluetooth controller or cellular modem.
type Radio struct {
	Kind    string `json:"kind"` // wifi, bluetooth, lte
	Name    string `json:"name"` // phy0, hci0, ttyUSB2
	Address string `json:"address,omitempty"`
	Driver  string `json:"driver,omitempty"`
	// Control is how an lte modem is driven: at (serial AT ports only), qmi, mbim (USB
	// modems with qmi_wwan / cdc_mbim), wwan (the kernel's WWAN subsystem, PCIe modems).
	Control string `json:"control,omitempty"`
}

// InputDevice is an evdev device (keyboards and buttons).
type InputDevice struct {
	Name string   `json:"name"`
	Path string   `json:"path"`           // /dev/input/event0
	Keys []string `json:"keys,omitempty"` // a few notable keys it can send (KEY_POWER...)
	// Bus says where it sits: host (the machine's own buttons: ACPI, gpio-keys), usb,
	// bluetooth, virtual, i8042 ... (what button.press's source: builtin relies on).
	Bus string `json:"bus,omitempty"`
}
