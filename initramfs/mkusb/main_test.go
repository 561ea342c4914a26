package main

import "testing"

func TestKernelCmdline(t *testing.T) {
	for _, tc := range []struct {
		name                             string
		console, server, discover, extra string
		want                             string
		wantErr                          bool
	}{
		{name: "server", console: "console=ttyS0,115200", server: "http://10.0.2.2:8080",
			want: "console=ttyS0,115200 flashline.server=http://10.0.2.2:8080"},
		{name: "discover", discover: "dns:flashline-server.local", extra: "flashline.debug",
			want: "flashline.discover=dns:flashline-server.local flashline.debug"},
		{name: "nothing", want: ""},
		{name: "bad scheme", server: "ftp://x", wantErr: true},
		{name: "no host", server: "http://", wantErr: true},
		{name: "space", discover: "dns:a b", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kernelCmdline(tc.console, tc.server, tc.discover, tc.extra)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
