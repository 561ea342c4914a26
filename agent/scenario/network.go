package scenario

import "github.com/flashline/flashline/agent/checks"

// Quieter is what the runner holds while a step times the network; *netquiet.Gate is one.
type Quieter interface {
	// Quiet keeps background downloads paused until release is called.
	Quiet() (release func())
}

// NeedsQuietNetwork reports whether the step measures a network link, so that nothing else
// may use the network while it runs: quiet_network in the file, or a kind that times a link
// (wifi.throughput).
func (s *Step) NeedsQuietNetwork() bool {
	if s.QuietNetwork {
		return true
	}
	p, ok := s.Params.(checks.NetworkTimer)
	return ok && p.TimesNetwork()
}
