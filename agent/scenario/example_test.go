package scenario_test

import (
	"context"
	"fmt"
	"os"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/protocol"
)

// The agent's journey: parse the job's scenario, plan it for this device's inventory, run it
// with the operator console and report every step as it happens.
func Example() {
	reg, _ := checks.New(checks.MemoryMin(), checks.CPU())
	src := []byte(`name: demo
steps:
  - name: RAM
    memory.min: {min: 4GiB}
  - name: CPU
    cpu: {min_cores: 4}
`)
	sc, err := scenario.Parse("demo.yaml", src, reg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // every error as FILE:LINE:COL: message
		return
	}
	inv := protocol.Inventory{MemoryBytes: 8 << 30, CPU: protocol.CPU{Model: "x", Cores: 2}}
	plan, err := sc.Plan(inv)
	if err != nil {
		return
	}
	r := &scenario.Runner{
		Inventory: checks.StaticInventory(inv),
		Operator: checks.OperatorFunc(func(step, msg string) {
			// e.g. send a protocol.EventPrompt to the line server
		}),
		OnEvent: func(ev scenario.Event) {
			if ev.Result != nil {
				pe := ev.Protocol() // a protocol.Event of kind "step", ready for the server
				fmt.Println(pe.Step, pe.Status, pe.Message)
			}
		},
	}
	rep := r.Run(context.Background(), plan)
	fmt.Println(rep.Status, rep.FailedStep)
	// Output:
	// RAM pass RAM 8GiB >= 4GiB
	// CPU fail 2 cores < 4
	// fail CPU
}
