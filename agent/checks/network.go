package checks

// NetworkTimer is implemented by params types whose check measures a network link (it times
// a transfer): a flash downloading at the same time would be measured instead of the device,
// so the scenario runner keeps background downloads paused while such a check runs.
type NetworkTimer interface {
	TimesNetwork() bool
}

// TimesNetwork implements NetworkTimer: wifi.throughput pushes data to the line's sink and
// times it.
func (WifiThroughputParams) TimesNetwork() bool { return true }
