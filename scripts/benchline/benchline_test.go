package main

import (
	"maps"
	"slices"
	"testing"
)

func TestParseCounters(t *testing.T) {
	tests := []struct {
		name string
		text string
		want map[string]float64
	}{
		{"summed over labels", "# HELP a x\n# TYPE a counter\na{image=\"x\"} 10\na{image=\"y\"} 1.5e+01\nb 3\n", map[string]float64{"a": 25, "b": 3}},
		{"no labels, timestamp", "a 7 1700000000000\n", map[string]float64{"a": 7}},
		{"label value with a space and brace", "a{image=\"a b}\"} 2\n", map[string]float64{"a": 2}},
		{"other metrics and prefixes ignored", "ab 5\na_total 4\nc 1\n", map[string]float64{}},
		{"garbage skipped", "a{\na{x=\"1\"}\na NaNx\n{} 3\n", map[string]float64{}},
		{"empty", "", map[string]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseCounters([]byte(tt.text), "a", "b")
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseCounters(f *testing.F) {
	f.Add([]byte("a{image=\"x\"} 10\nb 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseCounters(b, "a", "b")
	})
}

func TestKillSet(t *testing.T) {
	tests := []struct {
		n, k int
		want []int
	}{
		{20, 3, []int{1, 7, 14}},
		{20, 1, []int{1}},
		{3, 2, []int{1, 2}},
		{20, 0, nil},
	}
	for _, tt := range tests {
		got := killSet(tt.n, tt.k)
		if len(got) != len(tt.want) {
			t.Errorf("killSet(%d, %d) = %v, want %v", tt.n, tt.k, got, tt.want)
			continue
		}
		for _, i := range tt.want {
			if !got[i] {
				t.Errorf("killSet(%d, %d) = %v, want %v", tt.n, tt.k, got, tt.want)
			}
		}
	}
}

func TestParseSlow(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "", want: nil},
		{in: " ", want: nil},
		{in: "1", want: []int{1}},
		{in: "1, 5,5", want: []int{1, 5}},
		{in: "0,19", want: []int{0, 19}},
		{in: "20", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "1,x", wantErr: true},
		{in: "1,", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseSlow(tt.in, 20)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseSlow(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, tt.want) {
			t.Errorf("parseSlow(%q) = %v, want %v", tt.in, keys, tt.want)
		}
	}
}
