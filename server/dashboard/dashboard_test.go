package dashboard_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/flashline/flashline/protocol"
)

func TestResetRefusesCrossSite(t *testing.T) {
	l := newLine(t)
	job := l.job(t, "52:54:00:00:00:05", "S5")
	if _, err := l.client.PutResult(context.Background(), protocol.Result{RunID: job.RunID, Serial: "S5", Status: protocol.StatusPass, Secret: l.secret(job.RunID)}); err != nil {
		t.Fatal(err)
	}
	post := func(h map[string]string) int {
		req, _ := http.NewRequest("POST", l.srv.URL+"/dashboard/api/devices/52:54:00:00:00:05/reset", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Fatalf("cross-site reset: %d", code)
	}
	if code := post(map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Fatalf("foreign-origin reset: %d", code)
	}
	if lb, _ := l.store.LocalBoot(context.Background(), "52:54:00:00:00:05"); !lb {
		t.Fatal("a refused reset changed the device")
	}
	if code := post(map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusOK {
		t.Fatalf("same-origin reset: %d", code)
	}
	if code := post(map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusOK {
		t.Fatalf("second reset: %d", code)
	}
	if code := post(nil); code != http.StatusOK { // curl and scripts send neither header
		t.Fatalf("reset without browser headers: %d", code)
	}
	req, _ := http.NewRequest("POST", l.srv.URL+"/dashboard/api/devices/nope/reset", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad MAC: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("POST", l.srv.URL+"/dashboard/api/devices/02:00:00:00:00:77/reset", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown device: %d", resp.StatusCode)
	}
	for _, u := range []string{"/dashboard/api/history", "/dashboard/api/export?serial=S5&format=xml"} {
		resp, _ := http.Get(l.srv.URL + u)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
	}
	resp, _ := http.Get(l.srv.URL + "/dashboard/api/export?serial=S5&format=csv")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Errorf("csv export: %d %v", resp.StatusCode, resp.Header)
	}
}
