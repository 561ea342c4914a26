package hwsimap

import (
	"strings"
	"testing"
)

func TestHostapdConf(t *testing.T) {
	conf, err := HostapdConf(HostapdConfig{Interface: "wlan1", BSSes: []BSS{{SSID: "LINE-TEST"}, {SSID: "LINE-WPA2", Passphrase: "line-secret-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "interface=wlan1\ndriver=nl80211\nhw_mode=g\nchannel=1\nbeacon_int=100\nlogger_stdout=-1\nlogger_stdout_level=1\nssid=LINE-TEST\n\nbss=wlan1-1\nssid=LINE-WPA2\nwpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase=line-secret-1\n"
	if conf != want {
		t.Errorf("conf =\n%s\nwant\n%s", conf, want)
	}
	for _, bad := range []HostapdConfig{
		{Interface: "wlan1"},
		{BSSes: []BSS{{SSID: "X"}}},
		{Interface: "wlan1", BSSes: []BSS{{SSID: "X", Passphrase: "short"}}},
		{Interface: "wlan1", BSSes: []BSS{{SSID: "X\nwpa=0"}}},
		{Interface: "wlan1", BSSes: []BSS{{SSID: strings.Repeat("x", 33)}}},
		{Interface: "wlan1", Channel: 36, BSSes: []BSS{{SSID: "X"}}},
	} {
		if _, err := HostapdConf(bad); err == nil {
			t.Errorf("HostapdConf(%+v) accepted", bad)
		}
	}
	if got := bssInterface("wlp0s20f3mon123", 1); len(got) > 15 || !strings.HasSuffix(got, "-1") {
		t.Errorf("bssInterface = %q", got)
	}
}

func TestAPEnabled(t *testing.T) {
	for line, want := range map[string]string{
		"wlan1: AP-ENABLED":                             "wlan1",
		"wlan1-1: AP-ENABLED ":                          "wlan1-1",
		"wlan1: interface state UNINITIALIZED->ENABLED": "",
		"wlan1: AP-STA-CONNECTED 02:00:00:00:00:00":     "",
		"Configuration file: /tmp/hostapd-wlan1.conf":   "",
	} {
		got, ok := apEnabled(line)
		if got != want || ok != (want != "") {
			t.Errorf("apEnabled(%q) = %q %v", line, got, ok)
		}
	}
}

func FuzzAPEnabled(f *testing.F) {
	f.Add("wlan1: AP-ENABLED")
	f.Add(": AP-ENABLED")
	f.Fuzz(func(t *testing.T, line string) {
		if ifname, ok := apEnabled(line); ok && (ifname == "" || strings.ContainsAny(ifname, " \t")) {
			t.Fatalf("apEnabled(%q) = %q", line, ifname)
		}
	})
}
