package dashboard_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
)

// Issue 13: run ids, serials and MACs are on the dashboard for anyone on the line network, so
// the run secret must not be: not in any view, export, the live stream or the audit log, as
// the secret or as its stored hash.
func TestRunSecretNeverShown(t *testing.T) {
	l := newLine(t)
	const mac = "52:54:00:00:00:61"
	job := l.job(t, mac, "S61")
	secret := l.secret(job.RunID)
	if secret == "" {
		t.Fatal("no run secret issued")
	}
	hash := protocol.HashRunSecret(secret)

	// The live stream, open while the run reports.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", l.srv.URL+"/dashboard/events", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	live := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), `"status":"pass"`) {
				break
			}
		}
		live <- b.String()
	}()
	for deadline := time.Now().Add(5 * time.Second); l.dash.Clients() == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	l.events(t, job, protocol.Event{Seq: 1, Kind: protocol.EventStep, Step: "wifi", Status: protocol.StatusRunning})
	if _, err := l.client.PutResult(context.Background(), protocol.Result{RunID: job.RunID, Serial: "S61", MAC: mac, Status: protocol.StatusPass, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	if code := post(t, l.srv.URL+"/dashboard/api/devices/"+mac+"/reset", map[string]string{"Authorization": "Bearer " + testToken}); code != http.StatusOK {
		t.Fatalf("reset: %d", code)
	}
	seen := map[string]string{}
	select {
	case seen["/dashboard/events"] = <-live:
	case <-ctx.Done():
		t.Fatal("the live stream never showed the result")
	}
	for _, u := range []string{"/dashboard/api/devices?all=1", "/dashboard/api/history?serial=S61", "/dashboard/api/export?serial=S61",
		"/dashboard/api/export?serial=S61&format=csv", "/dashboard/api/export?line=*&format=json", "/dashboard/api/export?line=*&format=csv",
		"/dashboard/api/figures", "/dashboard/api/status", "/dashboard/api/audit"} {
		resp, err := http.Get(l.srv.URL + u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
		seen[u] = string(b)
	}
	if !strings.Contains(seen["/dashboard/api/export?serial=S61"], job.RunID) || !strings.Contains(seen["/dashboard/events"], job.RunID) {
		t.Fatal("the export or the stream lacks the run: the check below would prove nothing")
	}
	for u, body := range seen {
		if strings.Contains(body, secret) || strings.Contains(body, hash) {
			t.Errorf("%s shows the run secret or its hash", u)
		}
	}
}
