//go:build e2e

package journey_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.yaml.in/yaml/v3"

	"github.com/flashline/flashline/scripts/line"
	"github.com/flashline/flashline/testbed/qemu"
)

// TestTaktTime measures a device's time on the station, power-on to PASS, twice in one
// run: the shipped QEMU scenario with its steps one after another and the flash after them,
// then the same scenario with its parallel group and flash.while_testing. The image is a
// 384 MiB firmware whose free space is filled with incompressible data (TAKT_FILL_MIB,
// default 320), so that the flash takes a share of the time as it does on a real box, and
// the operator takes TAKT_OPERATOR_S (default 5) seconds to press POWER, as a person does
// (the harness alone presses at once). It prints both phase tables and the ratios of
// power-on to PASS (goal <= 0.75x) and of job to PASS (the part the two features change);
// it fails only when flashing while testing is not faster at all, since the shared
// machine's load moves both numbers.
func TestTaktTime(t *testing.T) {
	if !inNamespace(t) {
		return
	}
	repo, err := qemu.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := qemu.DefaultKernel()
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(repo, "out", "initrd-testbed.gz")
	if _, err := os.Stat(initrd); err != nil {
		t.Fatalf("%v: run `make testbed-initrd` first", err)
	}
	fill, operator := 320, 5
	if v := os.Getenv("TAKT_FILL_MIB"); v != "" {
		if fill, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	if v := os.Getenv("TAKT_OPERATOR_S"); v != "" {
		if operator, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	firmware := taktFirmware(t, repo, kernel, 384<<20, int64(fill)<<20)

	scen := filepath.Join(repo, "scenarios", "gm-box-qemu.yaml")
	seq := filepath.Join(t.TempDir(), "gm-box-qemu.yaml")
	if err := os.WriteFile(seq, sequential(t, scen), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		name   string
		pass   time.Duration
		job    time.Duration // power-on to job received
		phases []line.Phase
		stored []string
	}
	var results []result
	for _, c := range []struct {
		name         string
		scenario     string
		whileTesting bool
	}{
		{"sequential", seq, false},
		{"parallel + while_testing", scen, true},
	} {
		work := t.TempDir()
		logf := func(format string, args ...any) { t.Logf(strings.TrimRight(format, "\n"), args...) }
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		l, err := line.Start(ctx, line.Config{Repo: repo, Work: work, Kernel: kernel, Initrd: initrd,
			Firmware: firmware, Image: "firmware.img.zst", Scenario: c.scenario, Printf: logf, WhileTesting: c.whileTesting})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		serial := "E2E-TAKT-" + map[bool]string{false: "SEQ", true: "WT"}[c.whileTesting]
		d, err := line.NewDevice(work, serial, 512<<20)
		if err != nil {
			t.Fatal(err)
		}
		d.OperatorDelay = time.Duration(operator) * time.Second
		out, err := line.RunJourney(ctx, l, d, line.NoFault, logf)
		keepLogs(t, out, l)
		// The consoles show when the flash progressed beside which step: keep them.
		logs := filepath.Join(os.TempDir(), "flashline-takt-logs")
		_ = os.MkdirAll(logs, 0o755)
		for _, f := range out.Consoles {
			if b, err := os.ReadFile(f); err == nil {
				_ = os.WriteFile(filepath.Join(logs, filepath.Base(f)), b, 0o644)
			}
		}
		l.Close()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !out.Passed || !out.Booted {
			t.Fatalf("%s: passed %v booted %v", c.name, out.Passed, out.Booted)
		}
		r := result{name: c.name, phases: out.Phases}
		for i, p := range r.phases {
			if c.whileTesting && p.Name == "scenario finished" {
				// The milestone is the first "flash:" line, which a flash while testing
				// prints as it starts, beside the scenario.
				r.phases[i].Name = "flash started (beside the scenario)"
			}
		}
		for _, p := range out.Phases {
			if strings.HasPrefix(p.Name, "verdict") {
				r.pass = p.At
			}
			if p.Name == "job received" {
				r.job = p.At
			}
		}
		seen := map[string]bool{}
		for _, run := range out.Export.Runs {
			if !run.HasResult {
				continue
			}
			for _, tm := range run.Timings {
				if seen[tm.Phase] {
					continue
				}
				seen[tm.Phase] = true
				r.stored = append(r.stored, fmt.Sprintf("%-40s %7.1fs", tm.Phase, float64(tm.DurationMS)/1000))
			}
		}
		if c.whileTesting && !seen["flash_after_scenario"] {
			t.Errorf("%s: no flash_after_scenario timing: the flash did not run while testing", c.name)
		}
		results = append(results, r)
	}
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "\n== %s: power-on to PASS %.1fs\n  as the line saw it (since power-on):\n", r.name, r.pass.Seconds())
		for _, p := range r.phases {
			fmt.Fprintf(&b, "    %-40s at %6.1fs\n", p.Name, p.At.Seconds())
		}
		b.WriteString("  as the agent reported it (durations):\n")
		for _, s := range r.stored {
			b.WriteString("    " + s + "\n")
		}
	}
	ratio := results[1].pass.Seconds() / results[0].pass.Seconds()
	fmt.Fprintf(&b, "\npower-on to PASS: parallel + while_testing %.1fs / sequential %.1fs = %.2fx (goal <= 0.75x: %s)\n",
		results[1].pass.Seconds(), results[0].pass.Seconds(), ratio, map[bool]string{true: "met", false: "NOT met"}[ratio <= 0.75])
	seqTail, wtTail := results[0].pass-results[0].job, results[1].pass-results[1].job
	fmt.Fprintf(&b, "job received to PASS:   parallel + while_testing %.1fs / sequential %.1fs = %.2fx (boot before the job: %.1fs and %.1fs)\n",
		wtTail.Seconds(), seqTail.Seconds(), wtTail.Seconds()/seqTail.Seconds(), results[1].job.Seconds(), results[0].job.Seconds())
	t.Log(b.String())
	fmt.Print(b.String())
	if ratio >= 1 {
		t.Errorf("flashing while testing with parallel steps is not faster: %.2fx", ratio)
	}
}

// sequential returns the scenario with every parallel group replaced by its steps, in file
// order: the same steps, one after another.
func sequential(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	groups := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "steps" {
			continue
		}
		var flat []*yaml.Node
		for _, st := range root.Content[i+1].Content {
			var inner *yaml.Node
			for k := 0; k+1 < len(st.Content); k += 2 {
				if st.Content[k].Value == "parallel" {
					inner = st.Content[k+1]
				}
			}
			if inner == nil {
				flat = append(flat, st)
				continue
			}
			groups++
			flat = append(flat, inner.Content...)
		}
		root.Content[i+1].Content = flat
	}
	if groups == 0 {
		t.Fatalf("%s has no parallel group: nothing to compare", path)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// taktFirmware builds (once, cached in out/firmware-takt-SIZE-FILL) a bootable firmware image
// of size bytes whose free space at the partition's end holds fill bytes of random data, its
// zstd file and manifest.
func taktFirmware(t *testing.T, repo, kernel string, size, fill int64) string {
	t.Helper()
	dir := filepath.Join(repo, "out", fmt.Sprintf("firmware-takt-%d-%d", size>>20, fill>>20))
	if _, err := os.Stat(filepath.Join(dir, "firmware.img.json")); err == nil {
		return dir
	}
	base := dir + ".base"
	if _, err := os.Stat(filepath.Join(base, "firmware.img")); err != nil {
		cmd := exec.Command("go", "run", "./initramfs/mkfirmware", "-kernel", kernel, "-size", strconv.FormatInt(size, 10), "-o", base)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkfirmware: %v\n%s", err, out)
		}
	}
	img, err := os.ReadFile(filepath.Join(base, "firmware.img"))
	if err != nil {
		t.Fatal(err)
	}
	// Files are allocated from the partition's start: past the last non-zero MiB (before the
	// backup GPT in the last MiB) the filesystem's clusters are free, and what they hold does
	// not matter to it.
	const mib = 1 << 20
	end := int64(len(img)) - mib
	last := int64(0)
	zero := make([]byte, mib)
	for off := int64(0); off < end; off += mib {
		if !bytes.Equal(img[off:off+mib], zero) {
			last = off
		}
	}
	from := last + 2*mib
	if from+fill > end {
		t.Fatalf("only %d MiB free at the partition's end, want %d", (end-from)>>20, fill>>20)
	}
	if _, err := rand.Read(img[from : from+fill]); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var zst bytes.Buffer
	enc, _ := zstd.NewWriter(&zst)
	if _, err := enc.Write(img); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "firmware.img.zst"), zst.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	m, _ := json.Marshal(line.Manifest{Size: int64(len(img)), SHA256: hex.EncodeToString(sum[:])})
	if err := os.WriteFile(filepath.Join(dir, "firmware.img.json"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("takt firmware: %d MiB, %d MiB of data from %d MiB, zstd %d MiB", len(img)>>20, fill>>20, from>>20, zst.Len()>>20)
	return dir
}
